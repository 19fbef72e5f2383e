"""Webhooks end to end: the simulator posts real events to our callback.

Each test gets its own Directus collection and local database; the simulator
(real clock) and a local Directus are shared by the module.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from directus_strava.directus import DirectusClient
from directus_strava.scheduler import Scheduler, Timetable
from directus_strava.service import Service
from directus_strava.webhooks import SUBSCRIPTION_KEY, path_secret, verify_token
from strava_flow import connect
from strava_simulator import RunningSimulator, SimulatorConfig, running
from webhook_rig import eventually, file_exists, item, make_service, serving

pytestmark = pytest.mark.directus


@pytest.fixture(scope="module")
def directus_instance(directus_sqlite: Any) -> Any:
    """The session's SQLite Directus (tests/conftest.py)."""
    return directus_sqlite


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running(SimulatorConfig(seed=21, activities=4)) as simulator:
        yield simulator


@dataclass
class Rig:
    """A connected service, its Directus collection and the simulator."""

    service: Service
    admin: DirectusClient
    collection: str
    athlete: int
    sim: RunningSimulator
    callback: str = ""


@contextlib.contextmanager
def rig_for(
    sim: RunningSimulator, directus: Any, data_dir: Path, **more: Any
) -> Iterator[Rig]:
    """A subscribed service serving its callback, worker running."""
    sim.control.reset()
    service, admin, collection = make_service(sim, directus, data_dir, **more)
    athlete = connect(service).athlete_id
    rig = Rig(service, admin, collection, athlete, sim)
    # The worker runs; the scheduler (polling before the subscription exists)
    # would add work of its own, so its tests drive it directly.
    with serving(service, scheduler=False) as callback:
        rig.callback = callback
        service.subscriptions.create()
        yield rig
    service.close()


@pytest.fixture
def rig(sim: RunningSimulator, directus_instance: Any, tmp_path: Path) -> Iterator[Rig]:
    with rig_for(sim, directus_instance, tmp_path) as made:
        yield made


def imported(rig: Rig, activity_id: int) -> dict[str, Any] | None:
    found = item(rig.admin, rig.collection, activity_id)
    return found if found and found.get("detail_level") == "detail" else None


def last_sync(service: Service) -> int | None:
    row = service.store.db.execute("SELECT last_sync_at FROM athletes").fetchone()
    return int(row[0]) if row[0] else None


def drained(rig: Rig) -> bool:
    counts = rig.service.queue.counts()
    return counts["waiting"] == 0 and counts["running"] == 0


# --- validation and forged events ------------------------------------------


def test_validation_answers_only_the_right_verify_token(rig: Rig) -> None:
    settings = rig.service.settings
    good = {
        "hub.mode": "subscribe",
        "hub.challenge": "abc123",
        "hub.verify_token": verify_token(settings),
    }
    started = time.perf_counter()
    answer = httpx.get(rig.callback, params=good)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200
    assert answer.json() == {"hub.challenge": "abc123"}
    assert elapsed < 2.0
    wrong = httpx.get(rig.callback, params={**good, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert "abc123" not in wrong.text
    other_path = rig.callback.replace(path_secret(settings), "0" * 40)
    assert httpx.get(other_path, params=good).status_code == 404


def test_forged_and_malformed_events_change_nothing(rig: Rig) -> None:
    subscription = int(rig.service.store.get(SUBSCRIPTION_KEY) or 0)
    target = rig.sim.control.activities(rig.athlete)[0]["id"]
    event = {
        "object_type": "activity",
        "object_id": target,
        "aspect_type": "create",
        "owner_id": rig.athlete,
        "subscription_id": subscription,
        "event_time": 1,
        "updates": {},
    }
    cases = [
        ({**event, "subscription_id": subscription + 1}, 403),
        ({**event, "owner_id": 999_999}, 403),
        ({**event, "object_type": "club"}, 400),
        ({**event, "aspect_type": "rename"}, 400),
        ({**event, "object_id": "12"}, 400),
        ({**event, "updates": {"title": "x" * 5000}}, 413),
    ]
    for body, status in cases:
        answer = httpx.post(rig.callback, json=body)
        assert answer.status_code == status, (body, answer.text)
    assert httpx.post(rig.callback, content=b"[1, 2]").status_code == 400
    wrong_path = rig.callback[:-4] + "0000"
    assert httpx.post(wrong_path, json=event).status_code == 404
    assert rig.service.queue.counts() == {"waiting": 0, "running": 0, "failed": 0}
    assert rig.admin.items(rig.collection, limit=-1) == []


# --- create, update, delete, deauthorize -------------------------------------


def test_create_update_delete_reach_directus(rig: Rig) -> None:
    created = rig.sim.control.create_activity(rig.athlete, name="Morning loop")
    activity_id = int(created["id"])
    first = eventually(lambda: imported(rig, activity_id), what="created item")
    assert first["name"] == "Morning loop"
    assert first["gpx"], "a GPS activity gets its GPX file"
    rig.sim.control.update_activity(activity_id, name="Renamed loop")
    eventually(
        lambda: (imported(rig, activity_id) or {}).get("name") == "Renamed loop",
        what="renamed item",
    )
    rig.sim.control.delete_activity(activity_id)
    eventually(lambda: item(rig.admin, rig.collection, activity_id) is None)
    eventually(lambda: drained(rig), what="delete finished")
    assert not file_exists(rig.admin, first["gpx"])
    assert rig.service.importer.ledger(activity_id) is None


def test_delete_with_mark_keeps_the_item_marked(
    sim: RunningSimulator, directus_instance: Any, tmp_path: Path
) -> None:
    with rig_for(sim, directus_instance, tmp_path, on_delete="mark") as rig:
        activity_id = int(rig.sim.control.create_activity(rig.athlete)["id"])
        eventually(lambda: imported(rig, activity_id), what="created item")
        rig.sim.control.delete_activity(activity_id)
        kept = eventually(
            lambda: (
                (imported(rig, activity_id) or {}).get("deleted_on_strava")
                and imported(rig, activity_id)
            ),
            what="marked item",
        )
        assert file_exists(rig.admin, kept["gpx"])


@pytest.mark.parametrize("on_delete", ["remove", "mark"])
def test_deauthorization_forgets_tokens_and_applies_on_delete(
    sim: RunningSimulator, directus_instance: Any, tmp_path: Path, on_delete: str
) -> None:
    with rig_for(sim, directus_instance, tmp_path, on_delete=on_delete) as rig:
        activity_id = int(rig.sim.control.create_activity(rig.athlete)["id"])
        first = eventually(lambda: imported(rig, activity_id), what="created item")
        rig.sim.control.deauthorize(rig.athlete)
        eventually(
            lambda: rig.service.tokens.connected()[0]["token_status"] == "revoked",
            what="tokens forgotten",
        )
        if on_delete == "remove":
            eventually(lambda: item(rig.admin, rig.collection, activity_id) is None)
            assert not file_exists(rig.admin, first["gpx"])
        else:
            marked = eventually(
                lambda: (imported(rig, activity_id) or {}).get("deleted_on_strava"),
                what="marked item",
            )
            assert marked is True
        # Later events for the athlete who left are refused and queue nothing.
        late = {
            "object_type": "activity",
            "object_id": activity_id,
            "aspect_type": "update",
            "owner_id": rig.athlete,
            "subscription_id": int(rig.service.store.get(SUBSCRIPTION_KEY) or 0),
        }
        assert httpx.post(rig.callback, json=late).status_code == 403
        assert rig.service.queue.counts()["waiting"] == 0


# --- bursts -------------------------------------------------------------------


def test_burst_of_500_is_acknowledged_fast_and_coalesced(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="directus_strava.webhooks")
    targets = [a["id"] for a in rig.sim.control.activities(rig.athlete)]
    for number in range(500):
        target = targets[number % len(targets)]
        rig.sim.control.update_activity(target, name=f"burst {number}")
    deliveries = rig.sim.control.wait_for_deliveries(500, timeout=60)
    latencies = [d["attempts"][0]["latency_ms"] for d in deliveries]
    assert all(d["delivered"] and len(d["attempts"]) == 1 for d in deliveries)
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"\nburst of 500: p50={p50:.1f} ms p99={p99:.1f} ms max={max(latencies)}")
    slow = [(i, round(v)) for i, v in enumerate(latencies) if v > 50]
    print(f"slow deliveries (index, ms): {slow}")
    inside = [float(r.getMessage().rsplit("ms=", 1)[1]) for r in caplog.records
              if "event=webhook_event" in r.getMessage()]  # fmt: skip
    print(f"handler: p50={statistics.median(inside):.2f} ms max={max(inside):.1f}")
    assert p99 < 100
    eventually(lambda: drained(rig), timeout=60, what="queue drained")
    names = {a["id"]: a["name"] for a in rig.sim.control.activities(rig.athlete)}
    for target in targets:
        assert (imported(rig, target) or {}).get("name") == names[target]
    reads = rig.sim.control.counters()["requests"]
    detail_reads = sum(n for k, n in reads.items() if k.startswith("GET /api/v3/act"))
    print(f"imports for 500 events on {len(targets)} activities: {detail_reads / 2}")
    assert detail_reads <= 2 * 250, "bursts on one activity coalesce"


# --- polling and reconciliation ---------------------------------------------


def test_polling_with_webhooks_off_brings_a_new_activity_within_an_interval(
    sim: RunningSimulator, directus_instance: Any, tmp_path: Path
) -> None:
    sim.control.reset()
    service, admin, collection = make_service(
        sim, directus_instance, tmp_path, webhooks=False
    )
    athlete = connect(service).athlete_id
    interval = 4.0
    service.scheduler = Scheduler(
        service.queue,
        service.store,
        service.clock,
        Timetable(webhooks=False, poll_interval=interval, reconcile_days=0),
    )
    rig = Rig(service, admin, collection, athlete, sim)
    with serving(service):
        eventually(lambda: last_sync(service), what="first poll")
        eventually(lambda: drained(rig), what="first poll imported")
        created = sim.control.create_activity(athlete, name="Polled ride")
        started = time.monotonic()
        eventually(lambda: imported(rig, int(created["id"])), timeout=3 * interval)
        elapsed = time.monotonic() - started
    print(f"\npolling: new activity in Directus after {elapsed:.1f} s")
    assert elapsed < interval + 2.0
    assert sim.control.counters()["webhooks"]["events"] == 0
    service.close()


def test_reconciliation_catches_silent_edits_and_missed_deletions(rig: Rig) -> None:
    listed = rig.sim.control.activities(rig.athlete)
    for summary in listed:
        rig.service.queue.put("import", athlete_id=rig.athlete, object_id=summary["id"])
    eventually(lambda: drained(rig), what="imported")
    edited, gone = listed[0]["id"], listed[1]["id"]
    rig.service.subscriptions.delete()  # Strava stops telling us anything
    rig.sim.control.update_activity(edited, description="Added later")
    rig.sim.control.delete_activity(gone)
    after = int(time.time()) - 400 * 86400
    rig.service.queue.put(
        "reconcile",
        athlete_id=rig.athlete,
        payload={"after": after, "page": 1, "seen": []},
        key=f"reconcile:{rig.athlete}:1",
    )
    eventually(lambda: drained(rig), what="reconciled")
    assert (imported(rig, edited) or {}).get("description") == "Added later"
    assert item(rig.admin, rig.collection, gone) is None
    assert item(rig.admin, rig.collection, listed[2]["id"]) is not None


# --- subscription checks -----------------------------------------------------


def test_subscription_check_says_what_is_wrong(rig: Rig) -> None:
    subscriptions = rig.service.subscriptions
    status = subscriptions.check()
    assert status.state == "ok", status.sentence
    assert path_secret(rig.service.settings) not in str(subscriptions.show())
    subscriptions.delete()
    status = subscriptions.check()
    assert status.state == "none"
    assert "subscription create" in status.sentence
    elsewhere = rig.service.subscriptions.api
    with contextlib.ExitStack() as stack:
        from simulator_support import callback_server

        other = stack.enter_context(callback_server())
        elsewhere.create(other.url, "theirs")
        status = subscriptions.check()
        assert status.state == "elsewhere"
        assert other.url in status.sentence
        subscriptions.create(replace=True)
    assert subscriptions.check().state == "ok"
    assert rig.service.queue.counts()["failed"] == 0


def test_subscription_check_reports_failing_validation(
    sim: RunningSimulator, directus_instance: Any, tmp_path: Path
) -> None:
    with rig_for(sim, directus_instance, tmp_path) as rig:
        pass  # the server stops here; the subscription stays at Strava
    rig.service = Service.build(rig.service.settings)
    status = rig.service.subscriptions.check()
    assert status.state == "failing"
    assert "failed" in status.sentence
    rig.service.subscriptions.delete()
    rig.service.close()
