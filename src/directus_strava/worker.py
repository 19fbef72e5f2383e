"""The worker: the one place that decides when Strava is called.

It takes the most urgent due job, checks the rate budget for what the job will
spend, runs it, and records the outcome. Waiting for the budget postpones the
job instead of sleeping on it, so interactive work still passes bulk work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from directus_strava import backfill
from directus_strava.budget import RateBudget
from directus_strava.clock import Clock
from directus_strava.errors import (
    DirectusStravaError,
    DirectusUnavailable,
    RateLimited,
    StravaUnavailable,
)
from directus_strava.importer import Importer
from directus_strava.jobs import BULK, MAX_ATTEMPTS, SYNC, Job, Queue
from directus_strava.oauth import Tokens
from directus_strava.strava import PAGE_SIZE

log = logging.getLogger(__name__)

# Strava requests each kind of job spends, checked against the budget first.
COSTS = {
    "import": 2,
    "deepen": 2,
    "list": 1,
    "sync": 1,
    "backfill": 1,
    "reconcile": 1,
}
# Bulk jobs are not even taken while the budget has no room for the dearest.
BULK_GATE = max(COSTS.values())
# Activities edited shortly before the last look are looked at again.
SYNC_OVERLAP = 3 * 86400
IDLE_POLL = 1.0


class Worker:
    """Drains the job queue under the shared rate budget."""

    def __init__(
        self,
        queue: Queue,
        importer: Importer,
        tokens: Tokens,
        budget: RateBudget,
        clock: Clock,
    ) -> None:
        self.queue = queue
        self.importer = importer
        self.tokens = tokens
        self.budget = budget
        self.clock = clock
        self.handlers: dict[str, Callable[[Job], dict[str, Any]]] = {
            "import": self._import,
            "delete": self._delete,
            "deauthorize": self._deauthorize,
            "list": self._list,
            "sync": self._sync,
            "reconcile": self._reconcile,
            "backfill": self._backfill,
            "deepen": self._deepen,
        }

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set."""
        self.queue.recover()
        while not stop.is_set():
            if not self.run_once():
                self.clock.sleep(self._idle_wait(), stop)

    def drain(self, stop: threading.Event | None = None) -> int:
        """Work until no job is left (waiting for the budget as needed)."""
        stop = stop or threading.Event()
        self.queue.recover()
        done = 0
        while not stop.is_set() and self.queue.counts()["waiting"]:
            if self.run_once():
                done += 1
            else:
                self.clock.sleep(self._idle_wait(), stop)
        return done

    def run_once(self) -> bool:
        """Run the most urgent due job; False when none was due."""
        now = self.clock.now()
        # Leaving bulk jobs in the queue while the budget is spent spares
        # taking and postponing thousands of them at every window's end.
        gated = self._bulk_wait() > 0
        job = self.queue.take(now, max_priority=BULK - 1 if gated else None)
        if job is None:
            return False
        if job.kind in backfill.KINDS and backfill.is_paused(
            self.queue.store, job.athlete_id
        ):
            self.queue.later(job, now + backfill.PAUSED_FOR, "backfill paused", False)
            return True
        cost = self._cost(job)
        wait = self.budget.wait(cost=cost, bulk=job.bulk) if cost else 0.0
        if wait > 0:
            self.queue.later(job, now + wait, "waiting for Strava's rate budget", False)
            log.warning("event=budget_wait kind=%s wait_s=%.0f", job.kind, wait)
            return True
        self._run(job)
        return True

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            result = self.handlers[job.kind](job)
        except RateLimited as exc:
            self.queue.later(job, exc.until, str(exc), count=False)
        except (StravaUnavailable, DirectusUnavailable) as exc:
            self._retry(job, exc)
        except DirectusStravaError as exc:
            self._give_up(job, exc)
        except Exception as exc:
            # A bug or data nobody foresaw: keep the job, failed and visible,
            # rather than let it kill the worker and crash it again on restart.
            log.exception(
                "event=job_crashed kind=%s object=%s", job.kind, job.object_id
            )
            reason = f"unexpected {type(exc).__name__} ({exc}); see the service log"
            self._give_up(job, RuntimeError(reason))
        else:
            self.queue.done(job)
            ms = (time.perf_counter() - started) * 1000
            fields = " ".join(f"{k}={v}" for k, v in result.items())
            log.info(
                "event=job_done kind=%s athlete=%s object=%s ms=%.0f %s",
                job.kind,
                job.athlete_id,
                job.object_id,
                ms,
                fields,
            )

    def _retry(self, job: Job, exc: Exception) -> None:
        if job.attempts >= MAX_ATTEMPTS:
            self._give_up(job, exc)
            return
        delay = min(5 * 2**job.attempts, 900)
        log.warning(
            "event=job_retry kind=%s object=%s attempt=%s delay_s=%s error=%s",
            job.kind,
            job.object_id,
            job.attempts,
            delay,
            exc,
        )
        self.queue.later(job, self.clock.now() + delay, str(exc), count=True)

    def _give_up(self, job: Job, exc: Exception) -> None:
        log.error(
            "event=job_failed kind=%s athlete=%s object=%s error=%s",
            job.kind,
            job.athlete_id,
            job.object_id,
            exc,
        )
        self.queue.fail(job, str(exc))
        if job.kind == "import" and job.object_id and job.athlete_id:
            self.importer.mark_failed(job.object_id, job.athlete_id, str(exc))

    def _bulk_wait(self) -> float:
        return self.budget.wait(cost=BULK_GATE, bulk=True)

    def _cost(self, job: Job) -> int:
        if job.kind == "deepen" and self.importer.has_api_detail(job.object_id or 0):
            return 0
        if job.kind in ("import", "deepen") and self.queue.holds(job):
            return 0
        cost = COSTS.get(job.kind, 0)
        if job.kind in ("import", "deepen") and self.importer.config.photos:
            cost += 1
        return cost

    def _idle_wait(self) -> float:
        now = self.clock.now()
        bulk_wait = self._bulk_wait()
        row = self.queue.store.db.execute(
            "SELECT min(not_before) AS due FROM jobs WHERE state = 'waiting' "
            "AND priority < ?",
            (BULK if bulk_wait > 0 else BULK * 10 + 1,),
        ).fetchone()
        bulk = self.queue.store.db.execute(
            "SELECT min(not_before) AS due FROM jobs WHERE state = 'waiting' "
            "AND priority >= ?",
            (BULK,),
        ).fetchone()
        dues = [float(row["due"])] if row["due"] is not None else []
        if bulk_wait > 0 and bulk["due"] is not None:
            dues.append(max(float(bulk["due"]), now + bulk_wait))
        if not dues:
            return IDLE_POLL
        return max(0.0, min(min(dues) - now, 60.0)) or 0.01

    def _import(self, job: Job) -> dict[str, Any]:
        return self._fetch_and_write(job)

    def _deepen(self, job: Job) -> dict[str, Any]:
        """Detail and streams of one backfilled activity, unless already there."""
        assert job.object_id
        if self.importer.has_api_detail(job.object_id):
            return {"skipped": True}
        return self._fetch_and_write(job)

    def _fetch_and_write(self, job: Job) -> dict[str, Any]:
        assert job.athlete_id
        assert job.object_id
        fetched = self.queue.kept(job)
        reused = fetched is not None
        if fetched is None:
            fetched = self.importer.fetch(job.athlete_id, job.object_id, job.bulk)
        try:
            outcome = self.importer.write_fetched(job.athlete_id, fetched)
        except DirectusUnavailable:
            # While Directus is away, the retries then spend no Strava reads.
            self.queue.keep(job, fetched)
            raise
        return {"item": outcome.wrote_item, "gpx": outcome.wrote_gpx, "reused": reused}

    def _backfill(self, job: Job) -> dict[str, Any]:
        """List one page of 200 into Directus; enqueue its deepening, newest first.

        Re-running a page (after a crash) writes nothing new: summaries are
        merged by hash, deepen jobs coalesce by key or are skipped by the
        ledger, and the next page's job coalesces too.
        """
        assert job.athlete_id
        assert self.importer.strava is not None
        page, after, before = (job.payload.get(k) for k in ("page", "after", "before"))
        page = int(page or 1)
        summaries = self.importer.strava.activities(
            job.athlete_id, page=page, after=after, before=before, bulk=True
        )
        written = self.importer.write_summaries(job.athlete_id, summaries)
        queued = self._enqueue_deepening(job.athlete_id, summaries)
        if summaries:
            self.queue.put("backfill", athlete_id=job.athlete_id,
                           priority=job.priority,
                           payload={**job.payload, "page": page + 1},
                           key=f"backfill:{job.athlete_id}:{page + 1}")  # fmt: skip
        self._note_page(job.athlete_id, page, done=not summaries)
        return {"page": page, "listed": len(summaries), "written": written,
                "queued": queued}  # fmt: skip

    def _enqueue_deepening(
        self, athlete_id: int, summaries: list[dict[str, Any]]
    ) -> int:
        newest_first = sorted(
            summaries, key=lambda s: str(s.get("start_date") or ""), reverse=True
        )
        queued = 0
        for summary in newest_first:
            if self.importer.has_api_detail(int(summary["id"])):
                continue
            self.queue.put("deepen", athlete_id=athlete_id,
                           object_id=int(summary["id"]),
                           priority=backfill.DEEPEN_PRIORITY)  # fmt: skip
            queued += 1
        return queued

    def _note_page(self, athlete_id: int, page: int, done: bool) -> None:
        plan = backfill.Plan.load(self.queue.store, athlete_id)
        plan = plan or backfill.Plan(athlete_id)
        plan.pages_listed = max(plan.pages_listed, page)
        plan.listing_done = plan.listing_done or done
        plan.save(self.queue.store)

    def _delete(self, job: Job) -> dict[str, Any]:
        assert job.object_id
        self.importer.delete_activity(job.object_id)
        return {"on_delete": self.importer.config.on_delete.value}

    def _deauthorize(self, job: Job) -> dict[str, Any]:
        assert job.athlete_id
        self.tokens.forget(job.athlete_id)
        dropped = self.queue.drop_athlete(job.athlete_id)
        handled = self.importer.forget_athlete(job.athlete_id)
        return {"dropped_jobs": dropped, "activities": handled}

    def _list(self, job: Job) -> dict[str, Any]:
        assert job.athlete_id
        assert self.importer.strava is not None
        page = int(job.payload.get("page", 1))
        summaries = self.importer.strava.activities(
            job.athlete_id, page=page, per_page=int(job.payload.get("per_page", 30))
        )
        for summary in summaries:
            self.importer.remember_summary(job.athlete_id, summary)
        return {"page": page, "listed": len(summaries)}

    def _sync(self, job: Job) -> dict[str, Any]:
        """One page of 'everything since the last look', imports enqueued."""
        assert job.athlete_id
        assert self.importer.strava is not None
        after = int(job.payload.get("after", 0))
        page = int(job.payload.get("page", 1))
        started = float(job.payload.get("started", self.clock.now()))
        summaries = self.importer.strava.activities(
            job.athlete_id, page=page, after=after, bulk=job.bulk
        )
        queued = self._enqueue_changed(job, summaries)
        if len(summaries) == PAGE_SIZE:
            payload = {"after": after, "page": page + 1, "started": started}
            self.queue.put(
                "sync",
                athlete_id=job.athlete_id,
                priority=job.priority,
                payload=payload,
                key=f"sync:{job.athlete_id}:{page + 1}",
            )
        else:
            self.queue.store.db.execute(
                "UPDATE athletes SET last_sync_at = ? WHERE id = ?",
                (int(started), job.athlete_id),
            )
        return {"page": page, "listed": len(summaries), "queued": queued}

    def _reconcile(self, job: Job) -> dict[str, Any]:
        """One page of a window's re-check: edits re-imported, deletions found.

        Every listed activity is re-imported, not only those whose summary
        changed: descriptions, notes and gear are edited without any event or
        summary change, and an unchanged import writes nothing. That costs two
        requests per activity of the window, at the job's (bulk) priority.
        Pages continue until an empty one (Strava's pages can be short before
        the end), carrying the ids seen so far; the last page enqueues a
        delete for every ledger activity of the window Strava no longer lists.
        """
        assert job.athlete_id
        assert self.importer.strava is not None
        after, page = int(job.payload["after"]), int(job.payload.get("page", 1))
        summaries = self.importer.strava.activities(
            job.athlete_id, page=page, after=after, bulk=job.bulk
        )
        queued = self._enqueue_changed(job, summaries, every=True)
        seen = [*job.payload.get("seen", []), *(int(s["id"]) for s in summaries)]
        if summaries:
            payload = {"after": after, "page": page + 1, "seen": seen}
            key = f"reconcile:{job.athlete_id}:{page + 1}"
            self.queue.put("reconcile", athlete_id=job.athlete_id,
                           priority=job.priority, payload=payload, key=key)  # fmt: skip
            return {"page": page, "listed": len(summaries), "queued": queued}
        gone = self._enqueue_missing(job, after, set(seen))
        return {"page": page, "listed": 0, "queued": queued, "deleted": gone}

    def _enqueue_missing(self, job: Job, after: int, seen: set[int]) -> int:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(after))
        rows = self.queue.store.db.execute(
            "SELECT activity_id FROM ledger WHERE athlete_id = ? AND "
            "start_date >= ? AND state != 'deleted'",
            (job.athlete_id, since),
        ).fetchall()
        missing = [int(r["activity_id"]) for r in rows if r["activity_id"] not in seen]
        for activity_id in missing:
            self.queue.cancel(f"import:{job.athlete_id}:{activity_id}")
            self.queue.put("delete", athlete_id=job.athlete_id,
                           object_id=activity_id, priority=job.priority)  # fmt: skip
        return len(missing)

    def _enqueue_changed(
        self, job: Job, summaries: list[dict[str, Any]], every: bool = False
    ) -> int:
        """Enqueue imports of listed activities whose summary changed (or all)."""
        queued = 0
        for summary in summaries:
            self.importer.remember_summary(job.athlete_id or 0, summary)
            row = self.importer.ledger(int(summary["id"]))
            fresh = row is not None and row["level"] == "detail"
            if fresh and row["imported_hash"] == row["summary_hash"] and not every:
                continue
            self.queue.put(
                "import",
                athlete_id=job.athlete_id,
                object_id=int(summary["id"]),
                priority=max(job.priority, SYNC),
            )
            queued += 1
        return queued


def sync_payload(last_sync_at: int | None, now: float) -> dict[str, Any]:
    """Where a sync starts: a little before the last look, to catch edits."""
    after = max(0, (last_sync_at or 0) - SYNC_OVERLAP) if last_sync_at else 0
    return {"after": after, "page": 1, "started": now}
