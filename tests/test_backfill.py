"""The history import through the API: summaries first, then details, resumable."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from directus_strava import backfill
from directus_strava.cli import cli
from directus_strava.directus import DirectusClient
from directus_strava.jobs import Job
from directus_strava.schema import setup
from directus_strava.service import Service
from directus_strava.settings import Settings
from directus_strava.store import Store
from strava_flow import SharedClock, connect, settings_for
from strava_simulator import (
    Limits,
    RunningSimulator,
    SeedOptions,
    SimulatorConfig,
    running,
)

pytestmark = pytest.mark.directus

START = 1_796_292_000.0  # 2026-12-03 10:00 UTC, on a quarter hour
LIGHT = SeedOptions(days=3650, specials=False, day_long=False)
HISTORY = 2000
DETAILED = 150
TESTS = Path(__file__).parent


def make_service(
    sim: RunningSimulator, directus: Any, tmp_path: Path, name: str, **clock: Any
) -> tuple[Service, DirectusClient]:
    admin = DirectusClient(directus.url, directus.admin_token)
    # The admin token: setup's service user is another test's subject.
    setup(admin, name)
    settings = settings_for(
        sim, directus.url, directus.admin_token, tmp_path, directus_collection=name
    )
    return Service.build(settings, **clock), admin


def recorded(service: Service) -> list[tuple[str, int]]:
    """Wrap the backfill handlers to log (kind, activity or page) in run order."""
    order: list[tuple[str, int]] = []
    for kind in ("backfill", "deepen"):
        handler = service.worker.handlers[kind]

        def wrapped(job: Job, handler: Callable[[Job], Any] = handler) -> Any:
            result = handler(job)
            if not result.get("skipped"):
                order.append((job.kind, job.object_id or job.payload["page"]))
            return result

        service.worker.handlers[kind] = wrapped
    return order


def requests(sim: RunningSimulator) -> dict[str, int]:
    counts: dict[str, int] = sim.control.counters()["requests"]
    return {
        "list": sum(n for k, n in counts.items() if k.endswith("/athlete/activities")),
        "detail": sum(
            n for k, n in counts.items() if k.endswith("/activities/{id:int}")
        ),
        "streams": sum(n for k, n in counts.items() if k.endswith("/streams")),
    }


def items(admin: DirectusClient, collection: str) -> list[dict[str, Any]]:
    fields = "id,detail_level,gpx,route,source,start_date"
    return admin.items(collection, limit=-1, fields=fields)


def test_backfill_lists_first_then_deepens_newest_first_within_budget(
    directus_sqlite: Any, tmp_path: Path
) -> None:
    # Full detail costs about 0.6 s of real time per activity here (streams
    # rendered by the in-process simulator, GPX built, Directus writes), so
    # this part runs 150 activities under limits a tenth of Strava's defaults:
    # the same arithmetic, crossing the daily limit three times.
    limits = Limits(read_15min=10, read_daily=100)
    config = SimulatorConfig(
        seed=11,
        activities=DETAILED,
        seed_options=LIGHT,
        sim_clock=True,
        clock_start=START,
        limits=limits,
    )
    with running(config) as sim:
        clock = SharedClock(sim, START)
        service, admin = make_service(
            sim, directus_sqlite, tmp_path, "backfill_detail", clock=clock
        )
        athlete = connect(service).athlete_id
        order = recorded(service)
        started = time.perf_counter()
        backfill.start(service.queue, athlete)
        service.worker.drain()
        seconds = time.perf_counter() - started
        counts = requests(sim)
        progress = backfill.backfill_progress(service.store, service.budget)
        found = items(admin, "backfill_detail")
        service.close()

    days = (clock.now() - START) / 86400
    print(f"\n{DETAILED} activities: {seconds:.0f} s real, {days:.1f} simulated "
          f"days, requests {counts}")  # fmt: skip
    pages = math.ceil(DETAILED / 200) + 1
    kinds = [kind for kind, _ in order]
    assert kinds == ["backfill"] * pages + ["deepen"] * DETAILED
    assert counts == {"list": pages, "detail": DETAILED, "streams": DETAILED}
    assert service.budget.rejected == 0
    # 302 reads at 98 a day from 10:00 UTC: three midnights pass.
    assert clock.now() // 86400 - START // 86400 == 3
    deepened = [object_id for kind, object_id in order if kind == "deepen"]
    starts = {int(i["id"]): i["start_date"] for i in found}
    assert [starts[a] for a in deepened] == sorted(starts.values(), reverse=True)
    assert len(found) == DETAILED
    assert {i["detail_level"] for i in found} == {"detail"}
    assert len({i["gpx"] for i in found if i["gpx"]}) == DETAILED
    assert all(i["route"]["type"] == "LineString" for i in found)
    assert progress["done"] == progress["total"] == DETAILED
    assert progress["finished"] is True


def test_a_long_history_is_on_the_map_after_a_handful_of_requests(
    directus_sqlite: Any, tmp_path: Path
) -> None:
    config = SimulatorConfig(
        seed=12, activities=HISTORY, seed_options=LIGHT, sim_clock=True,
        clock_start=START,
    )  # fmt: skip
    with running(config) as sim:
        clock = SharedClock(sim, START)
        service, admin = make_service(
            sim, directus_sqlite, tmp_path, "backfill_summary", clock=clock
        )
        athlete = connect(service).athlete_id
        backfill.start(service.queue, athlete)
        started = time.perf_counter()
        pages = math.ceil(HISTORY / 200) + 1
        for _ in range(pages):
            assert service.worker.run_once()
        seconds = time.perf_counter() - started
        found = items(admin, "backfill_summary")
        progress = backfill.backfill_progress(service.store, service.budget)
        backfill.pause(service.queue, athlete, clock.now())
        before = requests(sim)
        service.worker.run_once()
        paused = requests(sim)
        backfill.resume(service.queue, athlete)
        service.worker.run_once()
        resumed = requests(sim)
        service.close()

    print(f"\n{HISTORY} summaries in {seconds:.0f} s")
    assert len(found) == HISTORY
    assert {i["detail_level"] for i in found} == {"summary"}
    assert all(i["route"]["type"] == "LineString" for i in found)
    assert before == {"list": pages, "detail": 0, "streams": 0}
    assert paused == before
    assert resumed == {"list": pages, "detail": 1, "streams": 1}
    assert progress["total"] == HISTORY
    assert progress["done"] == 0
    assert progress["requests_left"] == 2 * HISTORY
    # 98 reads a quarter and 980 a day (2% kept for clicks), from 10:00 UTC.
    assert progress["estimated_finish"] == expected_finish(2 * HISTORY, pages)


def expected_finish(reads: int, spent: int) -> float:
    # 14 hours of quarters hold more than 980 reads: the day's limit binds.
    left, day = reads - (980 - spent), 1
    while left > 980:
        left, day = left - 980, day + 1
    midnight = (START // 86400 + day) * 86400
    return midnight + (math.ceil(left / 98) - 1) * 900


def test_backfill_limited_to_a_date_range(directus_sqlite: Any, tmp_path: Path) -> None:
    config = SimulatorConfig(
        seed=13, activities=40, seed_options=LIGHT, sim_clock=True, clock_start=START
    )
    with running(config) as sim:
        clock = SharedClock(sim, START)
        service, admin = make_service(
            sim, directus_sqlite, tmp_path, "backfill_range", clock=clock
        )
        athlete = connect(service).athlete_id
        everything = sim.control.activities(athlete)
        after, before = int(START - 2000 * 86400), int(START - 1000 * 86400)
        backfill.start(service.queue, athlete, after=after, before=before)
        service.worker.drain()
        found = items(admin, "backfill_range")
        progress = backfill.backfill_progress(service.store, service.budget)
        service.close()

    expected = {a["id"] for a in everything if after < a["start"] < before}
    assert 0 < len(expected) < len(everything)
    assert {int(i["id"]) for i in found} == expected
    assert progress["done"] == progress["total"] == len(expected)


# --- SIGKILL halfway -----------------------------------------------------------
# A subprocess cannot share the in-process clock, so this part runs on real
# time, with rate limits generous enough not to matter.


def environment(settings: Settings) -> dict[str, str]:
    values = settings.model_dump(mode="json")
    for name in ("strava_client_secret", "directus_token", "service_secret_key"):
        values[name] = getattr(settings, name).get_secret_value()
    env = {k.upper(): str(v) for k, v in values.items() if v is not None}
    return {**os.environ, **env}


def work(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    # Only the backfill's own requests are counted: no polling beside it.
    command = [sys.executable, "-m", "directus_strava", "work", "--no-scheduler"]
    return subprocess.Popen(
        command,
        env=environment(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def kill_sim() -> Iterator[RunningSimulator]:
    limits = Limits(10_000, 100_000, 10_000, 100_000)
    config = SimulatorConfig(seed=14, activities=120, seed_options=LIGHT, limits=limits)
    with running(config) as sim:
        yield sim


def test_sigkill_halfway_changes_nothing_in_the_final_result(
    kill_sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path
) -> None:
    sim, total = kill_sim, 120
    service, admin = make_service(sim, directus_sqlite, tmp_path, "backfill_kill")
    athlete = connect(service).athlete_id
    backfill.start(service.queue, athlete)
    store = Store(service.settings.service_data_dir / "directus-strava.sqlite3")
    log = tmp_path / "worker.log"

    def progress() -> dict[str, Any]:
        return backfill.backfill_progress(store, service.budget)

    first = work(service.settings, log)
    wait_for(lambda: progress()["done"] >= total // 2, 300, "half the details")
    first.send_signal(signal.SIGKILL)
    first.wait()
    halfway = progress()["done"]
    second = work(service.settings, log)
    wait_for(lambda: progress()["finished"], 600, "the backfill to finish")
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=30)
    found = items(admin, "backfill_kill")
    counts = requests(sim)
    service.close()

    print(f"\nkilled at {halfway}/{total} deepened; requests {counts}")
    assert halfway < total, log.read_text()[-2000:]
    ids = [int(i["id"]) for i in found]
    assert sorted(ids) == sorted(a["id"] for a in sim.control.activities(athlete))
    assert len(ids) == len(set(ids)) == total
    assert {i["detail_level"] for i in found} == {"detail"}
    gpx = [i["gpx"] for i in found]
    assert all(gpx)
    assert len(set(gpx)) == total
    uploads = admin.request(
        "GET",
        "/files",
        params={"filter[id][_in]": ",".join(gpx), "limit": -1, "fields": "id"},
    )
    assert len(uploads) == total
    # At most the job in flight at the kill (an import or a page of the list)
    # is done a second time.
    assert total <= counts["detail"] <= total + 1
    assert 2 <= counts["list"] <= 3
    assert counts["detail"] + counts["list"] <= total + 3
    failed = store.db.execute("SELECT count(*) FROM jobs WHERE state = 'failed'")
    assert failed.fetchone()[0] == 0


def test_cli_backfill_shows_progress_pauses_and_finishes(
    kill_sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    service, admin = make_service(kill_sim, directus_sqlite, tmp_path, "backfill_cli")
    connect(service)
    for key, value in environment(service.settings).items():
        monkeypatch.setenv(key, value)
    service.close()
    runner = CliRunner()

    queued = runner.invoke(cli, ["backfill", "--no-wait", "--after", "2000-01-01"])
    paused = runner.invoke(cli, ["backfill", "--pause"])
    resumed = runner.invoke(cli, ["backfill", "--resume"])
    status = runner.invoke(cli, ["backfill", "--status"])

    assert queued.exit_code == 0, queued.output
    assert "0/0 deepened, running" in queued.output
    assert "paused" in paused.output
    assert resumed.exit_code == 0, resumed.output
    assert "120/120" in resumed.output
    assert "120/120 deepened, finished" in status.output
    assert len(admin.items("backfill_cli", limit=-1)) == 120
