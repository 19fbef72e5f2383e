"""Connect an athlete and import activities, with full data, into Directus."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from directus_strava.directus import DirectusClient
from directus_strava.jobs import BULK, INTERACTIVE
from directus_strava.oauth import REFRESH_MARGIN
from directus_strava.schema import setup
from directus_strava.service import Service
from strava_flow import SharedClock, connect, settings_for
from strava_simulator import RunningSimulator, SimulatorConfig, running

pytestmark = pytest.mark.directus

FIXTURES = Path(__file__).parent / "fixtures"
START = 1_796_292_000.0  # 2026-12-03 10:00 UTC, on a quarter hour


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(seed=7, activities=12, sim_clock=True, clock_start=START)
    with running(config) as simulator:
        yield simulator


@pytest.fixture
def rig(
    sim: RunningSimulator, directus: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Service, SharedClock, str]]:
    """A service with its own collection, connected to the simulator's athlete."""
    collection = f"acts_{request.node.name[-20:].strip('[]').replace('-', '_')}"
    collection = "".join(c for c in collection if c.isalnum() or c == "_")
    admin = DirectusClient(directus.url, directus.admin_token)
    report = setup(admin, collection, service_user=True)
    assert report.service_token
    sim.control.reset()
    sim.control.seed(7, activities=12)
    clock = SharedClock(sim, START)
    settings = settings_for(
        sim,
        directus.url,
        report.service_token,
        tmp_path,
        directus_collection=collection,
    )
    service = Service.build(settings, clock=clock)
    connect(service)
    yield service, clock, collection
    service.close()


def activities(sim: RunningSimulator) -> list[dict[str, Any]]:
    return sim.control.activities()


def pick(sim: RunningSimulator, test: Any) -> dict[str, Any]:
    return next(a for a in activities(sim) if test(a))


def test_gps_manual_and_day_long_activities_import_completely(
    rig: tuple[Service, SharedClock, str], sim: RunningSimulator, directus: Any
) -> None:
    service, _, collection = rig
    athlete = service.tokens.connected()[0]["id"]
    gps = pick(
        sim,
        lambda a: (
            not a["manual"]
            and 0 < a["points"] < 80_000
            and a["visibility"] == "everyone"
            and "<" not in a["name"]
        ),
    )
    manual = pick(sim, lambda a: a["manual"])
    day_long = pick(sim, lambda a: a["points"] >= 86_400)
    odd_name = pick(sim, lambda a: "<" in a["name"])
    for activity in (gps, manual, day_long, odd_name):
        service.queue.put(
            "import", athlete_id=athlete, object_id=activity["id"], priority=INTERACTIVE
        )
    service.worker.drain()
    assert service.queue.counts()["failed"] == 0, service.queue.listing("failed")

    admin = DirectusClient(directus.url, directus.admin_token)
    # PostgreSQL returns bigInteger keys as strings.
    items = {int(i["id"]): i for i in admin.items(collection, limit=-1)}
    detail = sim_detail(service, athlete, gps["id"])
    item = items[_key(gps["id"])]
    assert item["name"] == detail["name"]
    assert item["private_note"] == detail.get("private_note")
    assert item["description"] == detail.get("description")
    assert float(item["distance"]) == pytest.approx(detail["distance"], rel=1e-5)
    assert item["moving_time"] == detail["moving_time"]
    assert item["detail_level"] == "detail"
    assert item["places_status"] == "ok"
    assert len(item["start_country_code"]) == 2
    assert item["start_city"]
    assert item["route"]["type"] == "LineString"
    assert len(item["route"]["coordinates"]) >= 2
    gpx = admin.download(item["gpx"])
    streams = sim_streams(service, athlete, gps["id"])
    assert_valid_gpx(gpx, len(streams["latlng"]["data"]))

    manual_item = items[_key(manual["id"])]
    assert manual_item["gpx"] is None
    assert manual_item["route"] is None
    assert manual_item["places_status"] == "no_gps"

    odd = items[_key(odd_name["id"])]
    assert "\x07" not in odd["name"]
    assert odd["name"] == odd_name["name"].replace("\x07", "")
    assert_valid_gpx(admin.download(odd["gpx"]), odd_name["points"])

    day_item = items[_key(day_long["id"])]
    day_streams = sim_streams(service, athlete, day_long["id"])
    assert len(day_streams["latlng"]["data"]) >= 86_000
    assert_valid_gpx(
        admin.download(day_item["gpx"]), len(day_streams["latlng"]["data"])
    )


def test_reimport_of_an_unchanged_activity_writes_nothing(
    rig: tuple[Service, SharedClock, str], sim: RunningSimulator
) -> None:
    service, _, _ = rig
    athlete = service.tokens.connected()[0]["id"]
    gps = pick(sim, lambda a: not a["manual"] and 0 < a["points"] < 80_000)
    first = service.importer.import_activity(athlete, gps["id"])
    again = service.importer.import_activity(athlete, gps["id"])
    assert first.wrote_item
    assert not again.wrote_item
    assert not again.wrote_gpx


def test_two_imports_across_token_expiry_share_one_refresh(
    rig: tuple[Service, SharedClock, str], sim: RunningSimulator
) -> None:
    service, clock, _ = rig
    athlete = service.tokens.connected()[0]["id"]
    expires = service.tokens.connected()[0]["expires_at"]
    clock.advance(expires - clock.now() - REFRESH_MARGIN + 60)
    before = refreshes(sim)
    ids = [a["id"] for a in activities(sim)[:2]]
    errors: list[BaseException] = []

    def run(activity_id: int) -> None:
        try:
            service.importer.import_activity(athlete, activity_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert refreshes(sim) - before == 1


def test_work_pauses_at_the_read_limit_and_finishes_after_reset(
    rig: tuple[Service, SharedClock, str], sim: RunningSimulator
) -> None:
    service, clock, _ = rig
    athlete = service.tokens.connected()[0]["id"]
    sim.control.set_rate_limits(reset=True, read_15min=9, read_daily=1000)
    ids = [a["id"] for a in activities(sim)[:8]]
    for activity_id in ids:
        service.queue.put(
            "import", athlete_id=athlete, object_id=activity_id, priority=BULK
        )
    started = clock.now()
    service.worker.drain()
    assert service.queue.counts() == {"waiting": 0, "running": 0, "failed": 0}
    assert clock.now() - started >= 900, "the work should have waited for a reset"
    # Every 429 the simulator serves reaches our client, which counts it.
    assert service.budget.rejected == 0
    sim.control.set_rate_limits(reset=True, read_15min=100, read_daily=1000)


def refreshes(sim: RunningSimulator) -> int:
    """Token endpoint calls (the connection's exchange was made before)."""
    return int(sim.control.counters()["requests"].get("POST /oauth/token", 0))


def sim_detail(service: Service, athlete: int, activity_id: int) -> dict[str, Any]:
    return service.strava.activity(athlete, activity_id)


def sim_streams(service: Service, athlete: int, activity_id: int) -> dict[str, Any]:
    return service.strava.streams(athlete, activity_id)


def _key(activity_id: int) -> Any:
    return activity_id


def assert_valid_gpx(document: bytes, points: int) -> None:
    schema = etree.XMLSchema(etree.parse(str(FIXTURES / "xsd" / "wrapper.xsd")))
    tree = etree.fromstring(document)
    schema.assertValid(tree)
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    assert len(tree.findall(".//g:trkpt", ns)) == points
    assert time.time() > 0


def test_a_household_connects_several_athletes(
    rig: tuple[Service, SharedClock, str], sim: RunningSimulator, directus: Any
) -> None:
    service, _, collection = rig
    sim.control.seed(7, athletes=2, activities=3)
    athletes = sorted({a["athlete_id"] for a in activities(sim)})
    for athlete in athletes:
        connect(service, athlete=athlete)
    assert sorted(a["id"] for a in service.tokens.connected()) == athletes
    for athlete in athletes:
        own = pick(sim, lambda a, who=athlete: a["athlete_id"] == who)
        service.queue.put("import", athlete_id=athlete, object_id=own["id"])
    service.worker.drain()
    admin = DirectusClient(directus.url, directus.admin_token)
    owners = {int(i["athlete_id"]) for i in admin.items(collection, limit=-1)}
    assert owners == set(athletes)


def test_a_mapping_function_of_the_users_own_fills_their_collection(
    sim: RunningSimulator, directus: Any, tmp_path: Path
) -> None:
    admin = DirectusClient(directus.url, directus.admin_token)
    fields = [
        {"field": "id", "type": "bigInteger",
         "schema": {"is_primary_key": True, "has_auto_increment": False}},
        {"field": "title", "type": "string"},
        {"field": "country", "type": "string"},
        {"field": "track", "type": "uuid"},
    ]  # fmt: skip
    admin.request("POST", "/collections", json={"collection": "my_trips",
                                                "meta": {}, "schema": {},
                                                "fields": fields})  # fmt: skip
    sim.control.reset()
    sim.control.seed(7, activities=4)
    settings = settings_for(
        sim, directus.url, directus.admin_token, tmp_path,
        directus_collection="my_trips", mapping_function="trip_mapping:to_trip",
    )  # fmt: skip
    service = Service.build(settings, clock=SharedClock(sim, START))
    athlete = connect(service).athlete_id
    gps = pick(sim, lambda a: not a["manual"] and 0 < a["points"] < 80_000)
    service.importer.import_activity(athlete, gps["id"])
    [trip] = admin.items("my_trips")
    assert trip["title"].startswith(gps["name"])
    assert trip["title"].endswith(f"({gps['sport_type']})")
    assert len(trip["country"]) == 2
    assert trip["track"]
    service.close()


def test_import_photos_brings_the_photo_links(
    sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path
) -> None:
    collection = "acts_photos"
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    report = setup(admin, collection, service_user=True)
    sim.control.reset()
    sim.control.seed(7, activities=12)
    settings = settings_for(
        sim,
        directus_sqlite.url,
        report.service_token,
        tmp_path,
        directus_collection=collection,
        import_photos=True,
    )
    service = Service.build(settings, clock=SharedClock(sim, START))
    athlete = connect(service).athlete_id
    pictured = pick(sim, lambda a: "photos" in a["tags"])
    plain = pick(sim, lambda a: not a["tags"] and not a["manual"])
    for activity in (pictured, plain):
        service.queue.put("import", athlete_id=athlete, object_id=activity["id"],
                          priority=INTERACTIVE)  # fmt: skip
    service.worker.drain()
    service.close()

    fields = {"fields": "id,photos,photo_count"}
    with_photos = admin.request("GET", f"/items/{collection}/{pictured['id']}",
                                params=fields)  # fmt: skip
    without = admin.request("GET", f"/items/{collection}/{plain['id']}", params=fields)
    assert with_photos["photo_count"] == 2
    assert [photo["caption"] for photo in with_photos["photos"]] == [
        "View from the top",
        "",
    ]
    assert all("2048" in photo["urls"] for photo in with_photos["photos"])
    assert without["photo_count"] == 0
    assert without["photos"] is None
    # The photo list is asked for only where Strava counts photos.
    reads = sim.control.counters()["requests"]
    assert reads["GET /api/v3/activities/{id:int}/photos"] == 1
