"""The Directus side: the activities collection, its files and its map.

`setup` is idempotent: it adds only what is missing and never touches fields
a user added. Routes are native geometry where Directus has a spatial database
(PostGIS) and GeoJSON in a JSON field with the map interface where it does not
(SQLite without SpatiaLite, where geometry fields fail with 500s).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from directus_strava.directus import DirectusClient
from directus_strava.errors import DirectusError

log = logging.getLogger(__name__)

GPX_FOLDER = "Strava GPX"
ORIGINALS_FOLDER = "Strava originals"
SERVICE_ROLE = "Strava importer"
SERVICE_EMAIL = "strava-importer@example.org"
PROBE = "strava_import_probe"


def _field(
    name: str, kind: str, interface: str = "input", **meta: Any
) -> dict[str, Any]:
    field: dict[str, Any] = {
        "field": name,
        "type": kind,
        "meta": {"interface": interface, **meta},
        "schema": {},
    }
    if kind == "boolean":
        field["meta"]["special"] = ["cast-boolean"]
    if kind == "json":
        field["meta"]["special"] = ["cast-json"]
    if kind == "timestamp":
        field["meta"]["interface"] = "datetime"
    return field


def activity_fields(
    spatial: bool, folders: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every field of the activities collection, in display order."""
    folders = folders or {}
    route = _geo("route", "LineString", spatial)
    start = _geo("start_point", "Point", spatial)
    return [
        _field("name", "string", width="full"),
        _field("sport_type", "string"),
        _field("start_date", "timestamp", note="Start time (UTC)"),
        _field("start_date_local", "dateTime", "datetime", note="Local start"),
        _field("timezone", "string"),
        _field("distance", "float", note="metres"),
        _field("moving_time", "integer", note="seconds"),
        _field("elapsed_time", "integer", note="seconds"),
        _field("total_elevation_gain", "float", note="metres"),
        _field("elev_high", "float"),
        _field("elev_low", "float"),
        _field("average_speed", "float", note="m/s"),
        _field("max_speed", "float", note="m/s"),
        _field("average_heartrate", "float"),
        _field("max_heartrate", "float"),
        _field("average_watts", "float"),
        _field("max_watts", "integer"),
        _field("weighted_average_watts", "integer"),
        _field("kilojoules", "float"),
        _field("calories", "float"),
        _field("average_cadence", "float"),
        _field("average_temp", "float"),
        _field("suffer_score", "float"),
        _field("description", "text", "input-multiline", width="full"),
        _field("private_note", "text", "input-multiline", width="full"),
        _field("gear_id", "string"),
        _field("gear_name", "string"),
        _field("device_name", "string"),
        _field("external_id", "string"),
        _field("commute", "boolean", "boolean"),
        _field("trainer", "boolean", "boolean"),
        _field("manual", "boolean", "boolean"),
        _field("private", "boolean", "boolean"),
        _field("device_watts", "boolean", "boolean"),
        _field("visibility", "string"),
        _field("kudos_count", "integer"),
        _field("comment_count", "integer"),
        _field("achievement_count", "integer"),
        _field("pr_count", "integer"),
        _field("photo_count", "integer"),
        _field("photos", "json", "input-code", note="links, with IMPORT_PHOTOS"),
        _field("athlete_count", "integer", note="people who took part"),
        _field("athlete_id", "bigInteger"),
        *(
            _field(f"{end}_{part}", "string")
            for end in ("start", "end")
            for part in ("city", "region", "country", "country_code")
        ),
        _field("places_status", "string"),
        _field("strava_url", "string", display="raw"),
        _field("detail_level", "string", note="summary or detail"),
        _field("source", "string", note="api, archive or both"),
        _field("deleted_on_strava", "boolean", "boolean"),
        _field(
            "gpx",
            "uuid",
            "file",
            special=["file"],
            options={"folder": folders.get(GPX_FOLDER)},
        ),
        _field(
            "original_file",
            "uuid",
            "file",
            special=["file"],
            options={"folder": folders.get(ORIGINALS_FOLDER)},
        ),
        route,
        start,
        _field("raw", "json", "input-code", options={"language": "JSON"}),
        _field("synced_at", "timestamp"),
    ]


def _geo(name: str, shape: str, spatial: bool) -> dict[str, Any]:
    options = {"geometryType": shape}
    if spatial:
        field = _field(name, f"geometry.{shape}", "map", options=options)
        field["schema"] = {"geometry_type": shape}
        return field
    return _field(name, "json", "map", options=options)


@dataclass
class SetupReport:
    """What `setup` found and did."""

    collection: str
    spatial: bool
    created_fields: list[str]
    gpx_folder: str
    service_token: str | None = None


def setup(
    directus: DirectusClient, collection: str, service_user: bool = False
) -> SetupReport:
    """Create (or complete) the collection, folders, relations and map preset."""
    spatial = has_spatial(directus)
    folders = {
        name: ensure_folder(directus, name) for name in (GPX_FOLDER, ORIGINALS_FOLDER)
    }
    existing = _existing_fields(directus, collection)
    if existing is None:
        _create_collection(directus, collection)
        existing = {"id"}
    created = []
    for field in activity_fields(spatial, folders):
        if field["field"] not in existing:
            directus.request("POST", f"/fields/{collection}", json=field)
            created.append(field["field"])
    _relate_files(directus, collection, created)
    _map_preset(directus, collection)
    report = SetupReport(collection, spatial, created, folders[GPX_FOLDER])
    if service_user:
        report.service_token = _service_user(directus, collection)
    log.info(
        "event=setup collection=%s spatial=%s created_fields=%d",
        collection,
        spatial,
        len(created),
    )
    return report


def has_spatial(directus: DirectusClient) -> bool:
    """True when geometry fields work (PostGIS); found by a round trip."""
    _drop(directus, PROBE)
    _create_collection(directus, PROBE)
    try:
        directus.request(
            "POST", f"/fields/{PROBE}", json=_geo("spot", "Point", spatial=True)
        )
        spot = {"type": "Point", "coordinates": [8.5, 47.4]}
        directus.request("POST", f"/items/{PROBE}", json={"id": 1, "spot": spot})
        directus.request("GET", f"/items/{PROBE}")
    except DirectusError:
        return False
    finally:
        _drop(directus, PROBE)
    return True


def upload_folder(directus: DirectusClient, collection: str, field: str) -> str | None:
    """The folder a file field uploads into, as setup configured it."""
    # Directus 12.4.0 answers every non-admin read of /folders with a 500, so
    # the service user learns the folder from the field's own options.
    try:
        found = directus.request("GET", f"/fields/{collection}/{field}")
    except DirectusError as exc:
        # A collection of the user's own may have no such field: no folder then.
        if exc.missing:
            return None
        raise
    meta = found.get("meta") or {}
    folder = (meta.get("options") or {}).get("folder")
    return str(folder) if folder else None


def ensure_folder(directus: DirectusClient, name: str) -> str:
    """The id of the Directus folder called `name`, created when missing."""
    found = directus.request(
        "GET", "/folders", params={"filter[name][_eq]": name, "limit": 1}
    )
    if found:
        return str(found[0]["id"])
    created = directus.request("POST", "/folders", json={"name": name})
    return str(created["id"])


def _existing_fields(directus: DirectusClient, collection: str) -> set[str] | None:
    try:
        fields = directus.request("GET", f"/fields/{collection}")
    except DirectusError as exc:
        if exc.missing:
            return None
        raise
    return {field["field"] for field in fields or []} or None


def _create_collection(directus: DirectusClient, collection: str) -> None:
    primary = {
        "field": "id",
        "type": "bigInteger",
        "meta": {"interface": "input", "readonly": True, "note": "Strava id"},
        "schema": {"is_primary_key": True, "has_auto_increment": False},
    }
    meta = {
        "icon": "directions_bike",
        "note": "Strava activities, kept by directus-strava",
        "display_template": "{{name}}",
        "sort_field": None,
    }
    directus.request(
        "POST",
        "/collections",
        json={
            "collection": collection,
            "meta": meta,
            "schema": {},
            "fields": [primary],
        },
    )


def _relate_files(
    directus: DirectusClient, collection: str, created: list[str]
) -> None:
    for field in ("gpx", "original_file"):
        if field not in created:
            continue
        directus.request(
            "POST",
            "/relations",
            json={
                "collection": collection,
                "field": field,
                "related_collection": "directus_files",
                "schema": {"on_delete": "SET NULL"},
            },
        )


def _map_preset(directus: DirectusClient, collection: str) -> None:
    presets = directus.request(
        "GET",
        "/presets",
        params={
            "filter[collection][_eq]": collection,
            "filter[bookmark][_null]": "true",
            "filter[user][_null]": "true",
            "filter[role][_null]": "true",
        },
    )
    if presets:
        return
    directus.request(
        "POST",
        "/presets",
        json={
            "collection": collection,
            "layout": "map",
            "layout_query": {"map": {"fields": ["name", "start_date"]}},
            "layout_options": {"map": {"geometryField": "route"}},
        },
    )


def _service_user(directus: DirectusClient, collection: str) -> str:
    """A least-privilege user that can import, and its new static token."""
    policy = _service_policy(directus, collection)
    roles = directus.request(
        "GET", "/roles", params={"filter[name][_eq]": SERVICE_ROLE}
    )
    if roles:
        role = roles[0]["id"]
    else:
        body = {"name": SERVICE_ROLE, "policies": [{"policy": policy}]}
        role = directus.request("POST", "/roles", json=body)["id"]
    token = secrets.token_urlsafe(32)
    users = directus.request(
        "GET", "/users", params={"filter[email][_eq]": SERVICE_EMAIL}
    )
    body = {
        "email": SERVICE_EMAIL,
        "role": role,
        "token": token,
        "first_name": "Strava",
        "last_name": "importer",
    }
    if users:
        directus.request("PATCH", f"/users/{users[0]['id']}", json=body)
    else:
        directus.request("POST", "/users", json=body)
    return token


def _service_policy(directus: DirectusClient, collection: str) -> str:
    found = directus.request(
        "GET", "/policies", params={"filter[name][_eq]": SERVICE_ROLE}
    )
    if found:
        policy = str(found[0]["id"])
    else:
        body = {"name": SERVICE_ROLE, "app_access": False, "admin_access": False}
        policy = str(directus.request("POST", "/policies", json=body)["id"])
    granted = {
        (row["collection"], row["action"])
        for row in directus.request(
            "GET", "/permissions", params={"filter[policy][_eq]": policy, "limit": -1}
        )
    }
    wanted = [
        (target, action)
        for target in (collection, "directus_files")
        for action in ("create", "read", "update", "delete")
    ]
    for target, action in wanted:
        if (target, action) not in granted:
            body = {
                "policy": policy,
                "collection": target,
                "action": action,
                "fields": ["*"],
                "permissions": {},
            }
            directus.request("POST", "/permissions", json=body)
    return policy


def _drop(directus: DirectusClient, collection: str) -> None:
    try:
        directus.request("DELETE", f"/collections/{collection}")
    except DirectusError as exc:
        if not exc.missing:
            raise
