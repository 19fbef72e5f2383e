"""Place names in Directus: filled offline for old items, filterable by country."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from directus_strava.cli import cli
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup
from strava_flow import SECRET_KEY

pytestmark = pytest.mark.directus

OLD_ITEMS = [
    {"id": 101, "name": "Catbells", "raw": {"start_latlng": [54.6013, -3.1347],
                                          "end_latlng": [54.5700, -3.1700]}},
    {"id": 102, "name": "Kyoto temples", "raw": {"start_latlng": [35.0116, 135.7681],
                                               "end_latlng": [35.0100, 135.7700]}},
    {"id": 103, "name": "Flatirons", "raw": {"start_latlng": [40.015, -105.2705],
                                           "end_latlng": [40.0, -105.28]}},
    {"id": 104, "name": "Treadmill", "raw": {"start_latlng": [], "end_latlng": None}},
    {"id": 105, "name": "Sailing", "raw": {"start_latlng": [0.0, -30.0],
                                         "end_latlng": [0.1, -30.1]}},
    {"id": 106, "name": "Keswick from the map only",
     "start_point": {"type": "Point", "coordinates": [-3.1347, 54.6013]}},
]  # fmt: skip


def test_refresh_fills_old_items_and_directus_filters_by_country(
    directus: Any, tmp_path: Any
) -> None:
    admin = DirectusClient(directus.url, directus.admin_token)
    setup(admin, "places_old")
    admin.merge("places_old", OLD_ITEMS)
    env = {
        # No Strava at this address: a request to it would fail the command.
        "STRAVA_CLIENT_ID": "1",
        "STRAVA_CLIENT_SECRET": "unused",
        "STRAVA_API_URL": "http://127.0.0.1:9/api/v3",
        "STRAVA_WEB_URL": "http://127.0.0.1:9",
        "DIRECTUS_URL": directus.url,
        "DIRECTUS_TOKEN": directus.admin_token,
        "DIRECTUS_COLLECTION": "places_old",
        "SERVICE_SECRET_KEY": SECRET_KEY,
        "SERVICE_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(cli, ["places", "--refresh"], env=env)
    assert result.exit_code == 0, result.output
    assert "6 activities" in result.output

    items = {int(i["id"]): i for i in admin.items("places_old", limit=-1)}
    assert items[101]["start_city"] == "Keswick"
    assert items[101]["start_country_code"] == "GB"
    assert items[102]["start_country_code"] == "JP"
    assert items[103]["start_city"] == "Boulder"
    assert items[104]["places_status"] == "no_gps"
    assert items[104]["start_city"] is None
    assert items[105]["places_status"] == "remote"
    assert items[106]["start_city"] == "Keswick"

    british = admin.items(
        "places_old", **{"filter[start_country_code][_eq]": "GB", "fields": "id"}
    )
    assert sorted(int(i["id"]) for i in british) == [101, 106]
    again = CliRunner().invoke(cli, ["places", "--refresh"], env=env)
    assert "0 activities" in again.output
