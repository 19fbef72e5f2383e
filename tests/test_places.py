import importlib.util
import math
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from directus_strava import places
from directus_strava.places import Place, place_at, place_fields

# start_latlng and end_latlng of Strava activity 1946417534, the 2018 New York
# City Marathon, from dblock/strava-ruby-client (MIT, commit ca6ae632df31),
# spec/fixtures/strava/client/activity.yml: Fort Wadsworth to Central Park.
MARATHON_START = [40.601937, -74.060052]
MARATHON_END = [40.768444, -73.980915]
MID_ATLANTIC = [0.0, -30.0]

FIELD_NAMES = {
    f"{end}_{name}"
    for end in ("start", "end")
    for name in ("city", "region", "country", "country_code")
} | {"places_status"}


@pytest.mark.parametrize(
    ("latlng", "city", "region", "country", "code"),
    [
        ((54.6013, -3.1347), "Keswick", "England", "United Kingdom", "GB"),
        ((52.52, 13.405), "Berlin", "State of Berlin", "Germany", "DE"),
        ((40.015, -105.2705), "Boulder", "Colorado", "United States", "US"),
        ((35.0116, 135.7681), "Kyoto", "Kyoto", "Japan", "JP"),
        ((-33.9249, 18.4241), "Cape Town", "Western Cape", "South Africa", "ZA"),
        ((-45.0312, 168.6626), "Queenstown", "Otago", "New Zealand", "NZ"),
        ((-54.8019, -68.3030), "Ushuaia", "Tierra del Fuego", "Argentina", "AR"),
        ((64.1466, -21.9426), "Reykjavík", "Capital Region", "Iceland", "IS"),
        (MARATHON_START, "Fort Wadsworth", "New York", "United States", "US"),
    ],
)
def test_place_at_names_town_region_and_country(
    latlng: list[float], city: str, region: str, country: str, code: str
) -> None:
    place = place_at(latlng)

    assert place is not None
    assert (place.city, place.region, place.country) == (city, region, country)
    assert place.country_code == code
    assert place.distance_km is not None
    assert place.distance_km < 3.0


def test_place_at_reports_distance_over_the_ground() -> None:
    place = place_at((54.6013, -3.1347))

    # Keswick's centre in GeoNames is 54.59947, -3.13256: about 245 m away.
    assert place is not None
    assert place.distance_km == pytest.approx(0.246, abs=0.005)


def test_place_at_finds_towns_across_the_180th_meridian() -> None:
    place = place_at((66.32, 179.95))

    # Egvekinot lies at 179.1°W, 42 km east of this point.
    assert place is not None
    assert (place.city, place.country_code) == ("Egvekinot", "RU")
    assert place.distance_km == pytest.approx(41.6, abs=1.0)


def test_place_at_names_nothing_far_from_any_town() -> None:
    place = place_at(MID_ATLANTIC)

    assert place is not None
    assert place.distance_km is not None
    assert place.distance_km > places.REMOTE_KM
    assert place == Place(None, None, None, None, place.distance_km)


@pytest.mark.parametrize(
    "latlng",
    [
        None,
        [],
        [54.6],
        [54.6, -3.1, 100.0],
        [90.5, 0.0],
        [0.0, -180.5],
        [math.nan, 13.4],
        [52.5, math.inf],
        ["54.6", "-3.1"],
        [True, False],
        "54.6,-3.1",
    ],
)
def test_place_at_refuses_missing_or_bad_coordinates(latlng: Any) -> None:
    assert place_at(latlng) is None


def test_place_fields_names_start_and_end() -> None:
    fields = place_fields({"start_latlng": MARATHON_START, "end_latlng": MARATHON_END})

    assert set(fields) == FIELD_NAMES
    assert fields["start_city"] == "Fort Wadsworth"
    assert fields["end_city"] == "Hell's Kitchen"
    assert fields["start_region"] == fields["end_region"] == "New York"
    assert fields["start_country"] == fields["end_country"] == "United States"
    assert fields["start_country_code"] == fields["end_country_code"] == "US"
    assert fields["places_status"] == "ok"


@pytest.mark.parametrize(
    "activity",
    [
        {"start_latlng": [], "end_latlng": []},
        {"start_latlng": None, "end_latlng": None},
        {"id": 1, "type": "VirtualRide"},
    ],
)
def test_place_fields_without_gps_are_empty(activity: dict[str, Any]) -> None:
    fields = place_fields(activity)

    assert fields == dict.fromkeys(FIELD_NAMES) | {"places_status": "no_gps"}


def test_place_fields_mark_an_activity_at_sea_remote() -> None:
    fields = place_fields({"start_latlng": MARATHON_START, "end_latlng": MID_ATLANTIC})

    assert fields["start_city"] == "Fort Wadsworth"
    assert fields["end_city"] is None
    assert fields["end_country_code"] is None
    assert fields["places_status"] == "remote"


def test_place_fields_name_the_end_that_has_gps() -> None:
    fields = place_fields({"start_latlng": MARATHON_START, "end_latlng": []})

    assert fields["start_country_code"] == "US"
    assert fields["end_city"] is None
    assert fields["places_status"] == "ok"


def test_country_names_are_plain_english_under_iso_codes() -> None:
    names = places.country_names()

    assert len(names) > 240
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in names)
    assert all(
        name.strip() and not name.endswith((" of", " of the"))
        for name in names.values()
    )
    assert names["GB"] == "United Kingdom"
    assert names["KR"] == "South Korea"
    assert names["IR"] == "Iran"


def test_load_happens_once_per_process() -> None:
    count = places.load()
    started = time.perf_counter()
    again = places.load()
    elapsed = time.perf_counter() - started

    assert count == again > 100_000
    assert elapsed < 0.01


def _bench() -> ModuleType:
    path = Path(__file__).parents[1] / "bench" / "places_bench.py"
    spec = importlib.util.spec_from_file_location("places_bench", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_meets_its_goal_on_a_small_run() -> None:
    bench = _bench()

    result = bench.run(50)

    assert result.activities == 50
    assert result.named > 0
    assert result.met, bench.table(result)
    assert "per activity" in bench.table(result)
