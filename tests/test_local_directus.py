"""A real local Directus answers, trusts its admin token, and stops cleanly."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import local_directus
from local_directus import Instance
from local_directus.postgres import Server, psql

pytestmark = pytest.mark.directus


def admin(instance: Instance) -> httpx.Client:
    """Return a client that speaks to the instance as its admin."""
    headers = {"Authorization": f"Bearer {instance.admin_token}"}
    return httpx.Client(base_url=instance.url, headers=headers, timeout=30.0)


def create_collection(
    client: httpx.Client, name: str, fields: list[dict[str, object]]
) -> None:
    """Create a collection keyed by a client-supplied bigInteger id."""
    key = {
        "field": "id",
        "type": "bigInteger",
        "schema": {"is_primary_key": True, "has_auto_increment": False},
        "meta": {"hidden": False},
    }
    body = {"collection": name, "schema": {}, "meta": {}, "fields": [key, *fields]}
    response = client.post("/collections", json=body)
    assert response.status_code == 200, response.text


def test_instance_answers_health(directus: Instance) -> None:
    with admin(directus) as client:
        health = client.get("/server/health")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"


def test_admin_token_identifies_the_admin(directus: Instance) -> None:
    with admin(directus) as client:
        me = client.get("/users/me", params={"fields": "email"})

    assert me.status_code == 200
    assert me.json()["data"]["email"] == directus.admin_email


def test_instance_file_is_private_and_complete(directus: Instance) -> None:
    path = Path(directus.directory) / "instance.json"

    recorded = json.loads(path.read_text())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert recorded["url"] == directus.url
    assert recorded["admin_token"] == directus.admin_token


def test_big_integer_key_round_trips(directus: Instance) -> None:
    strava_id = 12_345_678_901_234  # beyond 32 bits, as Strava ids are
    name = f"ld_items_{directus.flavour}"
    title = {"field": "title", "type": "string"}
    with admin(directus) as client:
        create_collection(client, name, [title])
        created = client.post(f"/items/{name}", json={"id": strava_id, "title": "Ride"})
        read = client.get(f"/items/{name}/{strava_id}")

    assert created.status_code == 200, created.text
    # PostgreSQL hands bigInteger back as a string, SQLite as a number.
    assert str(read.json()["data"]["id"]) == str(strava_id)
    assert read.json()["data"]["title"] == "Ride"


def test_postgis_point_field_round_trips(directus_postgres: Instance) -> None:
    point = {"type": "Point", "coordinates": [4.8897, 52.3740]}
    where = {"field": "where", "type": "geometry.Point", "meta": {"interface": "map"}}
    with admin(directus_postgres) as client:
        create_collection(client, "ld_places", [where])
        created = client.post("/items/ld_places", json={"id": 1, "where": point})
        read = client.get("/items/ld_places/1")

    assert created.status_code == 200, created.text
    assert read.json()["data"]["where"] == point


@pytest.mark.parametrize("flavour", ["sqlite", "postgres"])
def test_stop_from_another_process_leaves_nothing_running(
    flavour: local_directus.Flavour, tmp_path: Path
) -> None:
    instance = local_directus.start(flavour, tmp_path / "instance")

    command = [sys.executable, "-m", "local_directus", "stop", "--dir"]
    subprocess.run([*command, instance.directory], check=True, timeout=60)
    os.waitpid(instance.pid, os.WNOHANG)  # the leader was our child: reap it

    with pytest.raises(ProcessLookupError):
        os.killpg(instance.pid, 0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{instance.url}/server/ping", timeout=2.0)
    if flavour == "postgres":
        query = (
            f"SELECT count(*) FROM pg_database WHERE datname = '{instance.database}'"
        )
        assert psql(Server.from_environment(), query) == "0"
