"""SIGKILL the service mid-burst: acknowledged events survive, nothing doubles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from directus_strava.settings import Settings
from directus_strava.store import Store
from directus_strava.webhooks import verify_token
from strava_flow import connect
from strava_simulator import RunningSimulator, SimulatorConfig, running
from webhook_rig import eventually, gpx_files, item, make_service

pytestmark = pytest.mark.directus
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def directus_instance(directus_sqlite: Any) -> Any:
    """The session's SQLite Directus (tests/conftest.py)."""
    return directus_sqlite


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running(SimulatorConfig(seed=5, activities=2)) as simulator:
        yield simulator


def environment(settings: Settings) -> dict[str, str]:
    """The service's settings as the environment of a child process."""
    values = settings.model_dump(mode="json")
    secrets = ("strava_client_secret", "directus_token", "service_secret_key")
    for name in secrets:
        values[name] = getattr(settings, name).get_secret_value()
    env = {k.upper(): str(v) for k, v in values.items() if v is not None}
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, **env, "PYTHONPATH": path}


def start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """Start the service process and wait until its callback answers."""
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "service_process.py")],
        env=environment(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "up",
        "hub.verify_token": verify_token(settings),
    }
    url = f"{settings.public()}/webhook/x"
    eventually(lambda: _answers(url, query) or process.poll() is not None)
    assert process.poll() is None, log.read_text()[-2000:]
    return process


def _answers(url: str, query: dict[str, str]) -> bool:
    try:
        httpx.get(url, params=query, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_sigkill_mid_burst_loses_no_acknowledged_event_and_doubles_nothing(
    sim: RunningSimulator, directus_instance: Any, tmp_path: Path
) -> None:
    sim.control.reset()
    sim.control.settings(webhook_retry_delay=0.05)
    # 40 new activities cost 80 reads: more than a new app's 100 per quarter
    # hour once the first history sync is counted.
    sim.control.set_rate_limits(read_15min=1000, overall_15min=2000, reset=True)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    service, admin, collection = make_service(sim, directus_instance, tmp_path)
    athlete = connect(service).athlete_id
    log = tmp_path / "service.log"
    process = start(service.settings, log)
    service.subscriptions.create()
    ids: list[int] = []
    killed_after = restarted_after = 0
    for number in range(40):
        ids.append(int(sim.control.create_activity(athlete)["id"]))
        for edit in range(4):
            sim.control.update_activity(ids[-1], name=f"crash {number}.{edit}")
        if number == 15:
            eventually(lambda: _finished(sim) >= 50, what="deliveries")
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_after = _finished(sim)
            process = start(service.settings, log)
            restarted_after = _finished(sim)
    deliveries = sim.control.wait_for_deliveries(200, timeout=120)
    store = Store(service.settings.service_data_dir / "directus-strava.sqlite3")
    eventually(lambda: _drained(store), timeout=180, what="queue drained")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)

    acked = [d["event"] for d in deliveries if d["delivered"]]
    lost = len(deliveries) - len(acked)
    print(f"\nkilled after {killed_after} deliveries, back after {restarted_after}; "
          f"{len(acked)} acknowledged, {lost} refused while down")  # fmt: skip
    first = sorted(d["attempts"][0]["latency_ms"] for d in deliveries
                   if d["delivered"] and len(d["attempts"]) == 1)  # fmt: skip
    print(f"service process: p99 acknowledgement {first[int(len(first) * 0.99)]} ms")
    assert killed_after >= 50
    assert len(acked) >= 150
    names = {a["id"]: a["name"] for a in sim.control.activities(athlete)}
    last = {d["event"]["object_id"]: d["delivered"] for d in deliveries}
    for activity_id in {event["object_id"] for event in acked}:
        found = item(admin, collection, activity_id)
        assert found is not None, f"acknowledged activity {activity_id} missing"
        assert len(gpx_files(admin, activity_id, since)) == 1, "one GPX per activity"
        if last[activity_id]:
            assert found["name"] == names[activity_id]
    failed = store.db.execute("SELECT count(*) FROM jobs WHERE state = 'failed'")
    assert failed.fetchone()[0] == 0
    service.close()


def _finished(sim: RunningSimulator) -> int:
    return int(sim.control.counters()["webhooks"]["delivered"])


def _drained(store: Store) -> bool:
    row = store.db.execute(
        "SELECT count(*) FROM jobs WHERE state IN ('waiting', 'running')"
    ).fetchone()
    return int(row[0]) == 0
