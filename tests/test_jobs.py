"""The durable queue: coalescing, priorities, crash recovery, failures kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from directus_strava.jobs import BULK, INTERACTIVE, LIVE, Queue
from directus_strava.store import Store


def queue(tmp_path: Path) -> Queue:
    return Queue(Store(tmp_path / "db.sqlite3"))


def test_duplicates_coalesce_keeping_the_urgent_priority(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    jobs.put("import", athlete_id=1, object_id=7, priority=BULK)
    jobs.put("import", athlete_id=1, object_id=7, priority=LIVE)
    jobs.put("import", athlete_id=1, object_id=7, priority=BULK)
    assert jobs.counts()["waiting"] == 1
    job = jobs.take(now=0)
    assert job is not None
    assert job.priority == LIVE


def test_interactive_work_goes_before_bulk_work(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    jobs.put("import", athlete_id=1, object_id=1, priority=BULK)
    jobs.put("import", athlete_id=1, object_id=2, priority=INTERACTIVE)
    first = jobs.take(now=0)
    assert first is not None
    assert first.object_id == 2


def test_postponed_job_waits_without_spending_an_attempt(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    jobs.put("import", athlete_id=1, object_id=1)
    job = jobs.take(now=0)
    assert job is not None
    jobs.later(job, not_before=100, error="budget", count=False)
    assert jobs.take(now=50) is None
    again = jobs.take(now=100)
    assert again is not None
    assert again.attempts == 1


def test_failed_job_is_kept_visible_and_retryable(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    jobs.put("import", athlete_id=1, object_id=1)
    job = jobs.take(now=0)
    assert job is not None
    jobs.fail(job, "Strava has no /activities/1 (HTTP 404).")
    assert jobs.counts() == {"waiting": 0, "running": 0, "failed": 1}
    assert jobs.listing("failed")[0]["last_error"].startswith("Strava has no")
    assert jobs.retry_failed() == 1
    assert jobs.take(now=0) is not None


def test_job_of_a_dead_worker_is_taken_again(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    jobs = Queue(Store(path))
    jobs.put("import", athlete_id=1, object_id=1)
    # Another process takes the job and dies without finishing it.
    script = (
        "import sys; from pathlib import Path;"
        "from directus_strava.jobs import Queue;"
        "from directus_strava.store import Store;"
        "q = Queue(Store(Path(sys.argv[1]))); assert q.take(now=0)"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert jobs.take(now=0) is None
    assert jobs.recover() == 1
    job = jobs.take(now=0)
    assert job is not None
    assert job.object_id == 1
    assert os.getpid() > 0


def test_recovery_drops_a_stale_copy_when_a_twin_waits(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    jobs.put("import", athlete_id=1, object_id=1)
    taken = jobs.take(now=0)
    assert taken is not None
    jobs.put("import", athlete_id=1, object_id=1)
    jobs.store.db.execute(
        "UPDATE jobs SET lease_owner = 999999999 WHERE id = ?", (taken.id,)
    )
    jobs.recover()
    assert jobs.counts() == {"waiting": 1, "running": 0, "failed": 0}


def test_store_migrates_an_empty_database_to_the_latest_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    version = store.db.execute("PRAGMA user_version").fetchone()[0]
    assert version >= 1
    assert store.migrate() == version


def test_a_job_that_crashes_is_kept_failed_and_the_worker_goes_on(
    tmp_path: Path,
) -> None:
    from directus_strava.budget import RateBudget
    from directus_strava.clock import SystemClock
    from directus_strava.worker import Worker

    jobs = queue(tmp_path)
    clock = SystemClock()
    worker = Worker(jobs, None, None, RateBudget(clock), clock)  # type: ignore[arg-type]
    ran: list[int] = []

    def crash(job: Any) -> dict[str, Any]:
        raise KeyError("start_latlng")

    def work(job: Any) -> dict[str, Any]:
        ran.append(job.object_id)
        return {}

    worker.handlers.update({"delete": crash, "deauthorize": work})
    jobs.put("delete", object_id=1, priority=INTERACTIVE)
    jobs.put("deauthorize", athlete_id=5, object_id=2, priority=LIVE)
    assert worker.drain() == 2
    assert ran == [2]
    [failed] = jobs.listing("failed")
    assert "unexpected KeyError" in failed["last_error"]
