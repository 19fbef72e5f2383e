"""Faults survived: Strava misbehaving, Directus away, the service killed.

Strava's faults come from the simulator's fault API; Directus goes away
behind a TCP proxy the test cuts; the clock is shared with the simulator so
retry back-off is fast-forwarded, not waited for. Directus is the session's
real SQLite one. (SIGKILL mid-backfill and mid-burst live in test_backfill.py
and test_webhook_crash.py, a crash inside a local write in test_store.py.)
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from directus_strava import webhooks
from directus_strava.directus import DirectusClient
from directus_strava.importer import import_archive
from directus_strava.jobs import BULK, LIVE
from directus_strava.oauth import REFRESH_MARGIN
from directus_strava.schema import setup
from directus_strava.service import Service
from directus_strava.webhooks import SUBSCRIPTION_KEY
from local_directus import Instance
from served import serve
from strava_flow import SharedClock, connect, settings_for
from strava_simulator import RunningSimulator, SeedOptions, SimulatorConfig, running
from tcp_proxy import proxied
from test_archive_import import FILENAME, ID, NAME, rows_of

pytestmark = pytest.mark.directus

START = 1_796_292_000.0  # 2026-12-03 10:00 UTC, on a quarter hour
NAMES = itertools.count()
TESTS = Path(__file__).parent
ATHLETE = 4242


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    options = SeedOptions(specials=False, day_long=False)
    config = SimulatorConfig(
        seed=31, activities=8, sim_clock=True, clock_start=START, seed_options=options
    )
    with running(config) as simulator:
        yield simulator


def build(
    sim: RunningSimulator, directus: Instance, data: Path, directus_url: str = ""
) -> tuple[Service, SharedClock, DirectusClient, str]:
    """A connected service with its own collection, on a clock shared with Strava."""
    sim.control.reset()
    sim.control.seed(31, activities=8)
    sim.control.clear_faults()
    collection = f"faults_{next(NAMES)}_{int(time.time()) % 100_000}"
    admin = DirectusClient(directus.url, directus.admin_token)
    setup(admin, collection)
    clock = SharedClock(sim, START)
    settings = settings_for(sim, directus_url or directus.url, directus.admin_token,
                            data, directus_collection=collection)  # fmt: skip
    service = Service.build(settings, clock=clock)
    connect(service)
    return service, clock, admin, collection


def enqueue_all(service: Service, sim: RunningSimulator, priority: int) -> list[int]:
    athlete = int(service.tokens.connected()[0]["id"])
    ids = [int(a["id"]) for a in sim.control.activities(athlete)]
    for activity_id in ids:
        service.queue.put("import", athlete_id=athlete, object_id=activity_id,
                          priority=priority)  # fmt: skip
    return ids


def assert_complete(
    admin: DirectusClient, collection: str, ids: list[int], since: str
) -> None:
    """Every activity once, in detail, with exactly one GPX file each."""
    items = admin.items(collection, limit=-1, fields="id,detail_level,gpx")
    assert sorted(int(i["id"]) for i in items) == sorted(ids)
    assert {i["detail_level"] for i in items} == {"detail"}
    for item in items:
        if item["gpx"]:
            name = f"strava-{item['id']}.gpx"
            assert len(uploads(admin, name, since)) == 1, item["id"]


def now_iso() -> str:
    """Directus's time now; files uploaded from here on are this test's.

    The simulator's activity ids repeat between tests and folders are shared,
    so files are told apart by when they were uploaded (whole seconds).
    """
    time.sleep(1.1)
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def uploads(
    admin: DirectusClient, name: str, since: str, until: str = "9999-12-31"
) -> list[dict[str, Any]]:
    """Directus files called `name` uploaded in [since, until)."""
    params = {"filter[filename_download][_eq]": name, "fields": "id", "limit": -1,
              "filter[uploaded_on][_gte]": since,
              "filter[uploaded_on][_lt]": until}  # fmt: skip
    found: list[dict[str, Any]] = admin.request("GET", "/files", params=params)
    return found


# --- Strava misbehaves ------------------------------------------------------------


FAULTS: list[dict[str, Any]] = [
    {"kind": "error", "status": 502, "path": "/oauth/token"},
    {"kind": "error", "status": 500},
    {"kind": "error", "status": 503},
    {"kind": "rate_limit"},
    {"kind": "drop"},
    {"kind": "latency", "latency_ms": 1500},
]


def through(service: Service, sim: RunningSimulator, spec: dict[str, Any]) -> int:
    """Work with one fault rule (twice) in place until it has fired; how often."""
    rule = sim.control.add_fault(count=2, **spec)
    for _ in range(200):
        if not service.worker.run_once():
            service.clock.sleep(5, threading.Event())
        state = next(f for f in sim.control.faults() if f["id"] == rule["id"])
        if state["fired"] >= 2:
            break
    sim.control.clear_faults()
    return int(state["fired"])


def test_strava_errors_throttling_slowness_and_drops_are_retried_to_the_end(
    sim: RunningSimulator, directus_sqlite: Instance, tmp_path: Path
) -> None:
    service, clock, admin, collection = build(sim, directus_sqlite, tmp_path)
    # Slow answers must outlast a client timeout, so shorten ours to 1 s.
    service.strava._http.timeout = httpx.Timeout(1.0)
    sim.control.set_rate_limits(reset=True, read_15min=12, read_daily=1000)
    # The token expires soon, so the first import refreshes it through faults.
    expires = service.tokens.connected()[0]["expires_at"]
    clock.advance(expires - clock.now() - REFRESH_MARGIN + 60)
    ids = enqueue_all(service, sim, BULK)
    since, started = now_iso(), clock.now()
    # One rule at a time: rules firing on the same request would hide each other.
    fired = [through(service, sim, spec) for spec in FAULTS]
    service.worker.drain()
    sim.control.set_rate_limits(reset=True, read_15min=100, read_daily=1000)

    assert service.queue.counts() == {"waiting": 0, "running": 0, "failed": 0}
    assert fired == [2] * len(FAULTS)
    assert_complete(admin, collection, ids, since)
    # Sixteen reads at 12 per quarter hour: the work waited for a new window.
    assert clock.now() - started >= 900 - (START + 900 - started) % 900
    # Only the two 429s the fault rules served: the budget never overspent.
    assert service.budget.rejected == 2
    service.close()


# --- Directus goes away -------------------------------------------------------------


def test_directus_away_for_a_minute_mid_import_loses_nothing(
    sim: RunningSimulator, directus_sqlite: Instance, tmp_path: Path
) -> None:
    with proxied(directus_sqlite.url) as proxy:
        service, clock, admin, collection = build(
            sim, directus_sqlite, tmp_path, directus_url=proxy.url
        )
        ids = enqueue_all(service, sim, LIVE)
        since = now_iso()
        athlete = int(service.tokens.connected()[0]["id"])
        service.store.put(SUBSCRIPTION_KEY, "77")
        app = Starlette(routes=webhooks.routes(service))
        with serve(app) as base:
            callback = f"{base}/webhook/{webhooks.path_secret(service.settings)}"
            assert service.worker.run_once()
            assert service.worker.run_once()
            proxy.cut()
            down_since = clock.now()
            while clock.now() - down_since < 60:
                if not service.worker.run_once():
                    clock.advance(5)
            acknowledged = post_events(callback, athlete, sim)
            assert service.queue.counts()["failed"] == 0
            retried = service.store.db.execute(
                "SELECT count(*) FROM jobs WHERE attempts > 0"
            ).fetchone()[0]
            proxy.restore()
            service.worker.drain()
    created = [int(event["object_id"]) for event in acknowledged]
    assert retried >= 1
    assert service.queue.counts() == {"waiting": 0, "running": 0, "failed": 0}
    assert_complete(admin, collection, ids + created, since)
    # Retries kept what they had fetched: each activity was read from Strava
    # once, however often its write to Directus was tried.
    reads = sim.control.counters()["requests"]
    assert reads["GET /api/v3/activities/{id:int}"] == len(ids + created)
    assert reads["GET /api/v3/activities/{id:int}/streams"] == len(ids + created)
    assert service.store.db.execute("SELECT count(*) FROM job_data").fetchone()[0] == 0
    service.close()


def post_events(callback: str, athlete: int, sim: RunningSimulator) -> list[Any]:
    """New activities on Strava, announced by hand while Directus is away."""
    events = []
    for number in range(3):
        created = sim.control.create_activity(athlete, name=f"While away {number}")
        body = {"object_type": "activity", "aspect_type": "create",
                "object_id": int(created["id"]), "owner_id": athlete,
                "subscription_id": 77, "event_time": 1, "updates": {}}  # fmt: skip
        answer = httpx.post(callback, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"queued": "import"}
        events.append(body)
    return events


# --- SIGKILL mid archive import --------------------------------------------------


def test_sigkill_during_an_archive_import_ends_like_an_undisturbed_run(
    sim: RunningSimulator, directus_sqlite: Instance, tmp_path: Path
) -> None:
    archive = big_archive(tmp_path / "export.zip", 40)
    calm, _, admin, calm_collection = build(sim, directus_sqlite, tmp_path / "calm")
    calm_since = now_iso()
    import_archive(calm.importer, archive, ATHLETE)
    calm.close()
    killed, _, _, collection = build(sim, directus_sqlite, tmp_path / "killed")
    env = cli_env(killed)
    killed.close()
    since = now_iso()
    log = tmp_path / "archive.log"
    first = run_cli(env, archive, log)
    deadline = time.monotonic() + 120
    while len(admin.items(collection, limit=-1, fields="id")) < 10:
        assert first.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the archive import did not progress"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    halfway = len(admin.items(collection, limit=-1, fields="id"))
    second = run_cli(env, archive, log)
    assert second.wait(300) == 0, log.read_text()[-2000:]
    assert halfway < 40
    calm_run = contents(admin, calm_collection, calm_since, since)
    assert contents(admin, collection, since) == calm_run
    assert len(calm_run) == 40


def big_archive(path: Path, count: int) -> Path:
    """An export of `count` GPX activities (the fixture track, renumbered)."""
    header, template = rows_of("activities.csv")
    track = (TESTS / "fixtures" / "archive" / "berlin_0.9km.gpx").read_bytes()
    rows, files = [], {}
    for number in range(count):
        row = list(template)
        name = f"activities/{5000 + number}.gpx"
        row[ID], row[NAME], row[FILENAME] = str(5000 + number), f"Run {number}", name
        rows.append(row)
        files[name] = track
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as export:
        export.writestr("activities.csv", text.getvalue())
        for name, data in files.items():
            export.writestr(name, data)
    return path


def cli_env(service: Service) -> dict[str, str]:
    settings = service.settings
    values = settings.model_dump(mode="json")
    for name in ("strava_client_secret", "directus_token", "service_secret_key"):
        values[name] = getattr(settings, name).get_secret_value()
    env = {k.upper(): str(v) for k, v in values.items() if v is not None}
    return {**os.environ, **env}


def run_cli(env: dict[str, str], archive: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "directus_strava", "import-archive",
               str(archive), "--athlete", str(ATHLETE)]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def contents(
    admin: DirectusClient, collection: str, since: str, until: str = "9999-12-31"
) -> list[dict[str, Any]]:
    """Items without what differs between runs, with their files' counts."""
    volatile = ("synced_at", "gpx", "original_file")
    kept = []
    for item in admin.items(collection, limit=-1, sort="id"):
        gpx = uploads(admin, f"strava-{item['id']}.gpx", since, until)
        originals = uploads(admin, f"{item['id']}.gpx", since, until)
        stable = {k: v for k, v in item.items() if k not in volatile}
        kept.append({**stable, "gpx_files": len(gpx), "originals": len(originals)})
    return kept
