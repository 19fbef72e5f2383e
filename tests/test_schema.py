"""`directus-strava setup`: idempotent, detects PostGIS, leaves user fields."""

from __future__ import annotations

from typing import Any

import pytest

from directus_strava.directus import DirectusClient
from directus_strava.errors import DirectusError
from directus_strava.schema import setup

pytestmark = pytest.mark.directus


def test_setup_twice_changes_nothing_and_keeps_user_fields(directus: Any) -> None:
    admin = DirectusClient(directus.url, directus.admin_token)
    first = setup(admin, "schema_twice")
    assert "route" in first.created_fields
    assert first.spatial is (directus.flavour == "postgres")
    user_field = {"field": "companions", "type": "string", "meta": {}, "schema": {}}
    admin.request("POST", "/fields/schema_twice", json=user_field)
    second = setup(admin, "schema_twice")
    assert second.created_fields == []
    fields = {f["field"]: f for f in admin.request("GET", "/fields/schema_twice")}
    assert "companions" in fields
    assert fields["id"]["type"] == "bigInteger"
    assert fields["route"]["type"].startswith("geometry") is first.spatial
    assert fields["gpx"]["meta"]["options"]["folder"]
    presets = admin.request(
        "GET", "/presets", params={"filter[collection][_eq]": "schema_twice"}
    )
    assert len(presets) == 1
    assert presets[0]["layout"] == "map"
    assert presets[0]["layout_options"]["map"]["geometryField"] == "route"


def test_service_user_can_import_but_not_change_the_schema(directus: Any) -> None:
    admin = DirectusClient(directus.url, directus.admin_token)
    report = setup(admin, "schema_least", service_user=True)
    assert report.service_token
    service = DirectusClient(directus.url, report.service_token)
    service.merge("schema_least", [{"id": 2**40 + 1, "name": "Ride ☀️"}])
    service.merge("schema_least", [{"id": 2**40 + 1, "name": "Ride again"}])
    items = service.items("schema_least")
    assert [(int(i["id"]), i["name"]) for i in items] == [(2**40 + 1, "Ride again")]
    with pytest.raises(DirectusError) as refused:
        service.request("POST", "/collections", json={"collection": "nope"})
    assert refused.value.status == 403
