"""The durable job queue in the local database.

Everything that needs Strava or Directus becomes a job here: web pages, the
CLI, webhooks and the history import only enqueue. A job waiting under the same
key as a new one absorbs it (duplicate webhooks, bursts of updates), keeping
the more urgent priority. A job taken by a worker that died is taken again
once its lease runs out; a job that keeps failing stays, with its last error.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from directus_strava.store import Store

# Lower runs first: a user's click and webhooks before the history import.
INTERACTIVE = 10
LIVE = 20
SYNC = 30
BULK = 50

LEASE_SECONDS = 300
MAX_ATTEMPTS = 8
# What a job fetched is reused for this long at most (seconds): an activity
# edited later without a webhook event reaching us is then fetched afresh.
KEEP_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Job:
    """One unit of work taken from the queue."""

    id: int
    kind: str
    key: str
    athlete_id: int | None
    object_id: int | None
    priority: int
    attempts: int
    payload: dict[str, Any]

    @property
    def bulk(self) -> bool:
        """True for background work that yields to interactive work."""
        return self.priority >= BULK


class Queue:
    """Enqueue, take, finish and retry jobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(
        self,
        kind: str,
        *,
        athlete_id: int | None = None,
        object_id: int | None = None,
        priority: int = LIVE,
        payload: dict[str, Any] | None = None,
        key: str | None = None,
        not_before: float = 0.0,
    ) -> None:
        """Add a job, or merge it into a waiting job with the same key.

        `not_before` holds the job back; merging keeps the later of the two,
        so a burst of events for one activity keeps pushing its import back
        and ends in one import.
        """
        key = key or f"{kind}:{athlete_id}:{object_id}"
        now = time.time()
        # News for a waiting job makes what it fetched before stale.
        self.store.db.execute(
            "DELETE FROM job_data WHERE job_id IN "
            "(SELECT id FROM jobs WHERE key = ? AND state = 'waiting')",
            (key,),
        )
        self.store.db.execute(
            "INSERT INTO jobs(kind, key, athlete_id, object_id, priority, payload, "
            "not_before, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(key) WHERE state = 'waiting' DO UPDATE SET "
            "priority = min(priority, excluded.priority), "
            "not_before = max(not_before, excluded.not_before), "
            "payload = excluded.payload, updated_at = excluded.updated_at",
            (kind, key, athlete_id, object_id, priority,
             json.dumps(payload or {}), not_before, now, now),
        )  # fmt: skip

    def take(self, now: float, max_priority: int | None = None) -> Job | None:
        """Lease the most urgent job that is due, if any."""
        limit = BULK * 10 if max_priority is None else max_priority
        with self.store.transaction() as db:
            db.execute(
                "DELETE FROM jobs WHERE state = 'running' AND lease_until < ? "
                "AND key IN (SELECT key FROM jobs WHERE state = 'waiting')",
                (now,),
            )
            db.execute(
                "UPDATE jobs SET state = 'waiting', lease_until = NULL "
                "WHERE state = 'running' AND lease_until < ?",
                (now,),
            )
            row = db.execute(
                "SELECT * FROM jobs WHERE state = 'waiting' AND not_before <= ? "
                "AND priority <= ? ORDER BY priority, not_before, id LIMIT 1",
                (now, limit),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', lease_until = ?, "
                "lease_owner = ?, attempts = attempts + 1 WHERE id = ?",
                (now + LEASE_SECONDS, os.getpid(), row["id"]),
            )
        return _job(row)

    def recover(self) -> int:
        """Return jobs held by processes that no longer run to the queue."""
        rows = self.store.db.execute(
            "SELECT id, lease_owner FROM jobs WHERE state = 'running'"
        ).fetchall()
        dead = [row["id"] for row in rows if not _alive(row["lease_owner"])]
        with self.store.transaction() as db:
            for job_id in dead:
                # A waiting twin already carries the work: drop the stale copy.
                db.execute(
                    "DELETE FROM jobs WHERE id = ? AND key IN "
                    "(SELECT key FROM jobs WHERE state = 'waiting')",
                    (job_id,),
                )
                db.execute(
                    "UPDATE jobs SET state = 'waiting', lease_until = NULL "
                    "WHERE id = ?",
                    (job_id,),
                )
        return len(dead)

    def done(self, job: Job) -> None:
        """Forget a finished job."""
        self.store.db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

    def keep(self, job: Job, data: Mapping[str, Any]) -> None:
        """Keep what a job fetched, so that its next attempt need not fetch it.

        It goes with the job, and goes when news for the job arrives (a later
        webhook event for the same activity): the next attempt starts afresh.
        """
        # default=list: streams come as arrays of numbers (see gpx.unwrap_streams).
        blob = zlib.compress(json.dumps(data, default=list).encode(), 1)
        self.store.db.execute(
            "INSERT OR REPLACE INTO job_data(job_id, data, kept_at) "
            "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)",
            (job.id, blob, time.time(), job.id),
        )

    def kept(self, job: Job) -> dict[str, Any] | None:
        """What an earlier attempt of the job kept, unless it is too old."""
        row = self.store.db.execute(
            "SELECT data FROM job_data WHERE job_id = ? AND kept_at > ?",
            (job.id, time.time() - KEEP_SECONDS),
        ).fetchone()
        if row is None:
            return None
        kept: dict[str, Any] = json.loads(zlib.decompress(row["data"]))
        return kept

    def holds(self, job: Job) -> bool:
        """True when the job kept what it fetched (see kept)."""
        row = self.store.db.execute(
            "SELECT 1 FROM job_data WHERE job_id = ? AND kept_at > ?",
            (job.id, time.time() - KEEP_SECONDS),
        ).fetchone()
        return row is not None

    def later(self, job: Job, not_before: float, error: str, count: bool) -> None:
        """Put a job back to wait; `count=False` undoes its attempt (rate waits)."""
        self._release(job, "waiting", not_before, error, 0 if count else 1)

    def fail(self, job: Job, error: str) -> None:
        """Keep a job that cannot succeed as failed, with its error."""
        self._release(job, "failed", 0, error, 0)

    def retry_failed(self, job_id: int | None = None) -> int:
        """Send failed jobs (or one) back to the queue; returns how many."""
        query = "UPDATE jobs SET state = 'waiting', attempts = 0, not_before = 0 "
        query += "WHERE state = 'failed'"
        args: tuple[int, ...] = ()
        if job_id is not None:
            query += " AND id = ?"
            args = (job_id,)
        # A waiting twin may exist under the same key; drop the failed copy then.
        self.store.db.execute(
            "DELETE FROM jobs WHERE state = 'failed' AND key IN "
            "(SELECT key FROM jobs WHERE state = 'waiting')"
        )
        return self.store.db.execute(query, args).rowcount

    def cancel(self, key: str) -> int:
        """Remove the waiting and failed jobs under a key; returns how many."""
        return self.store.db.execute(
            "DELETE FROM jobs WHERE key = ? AND state IN ('waiting', 'failed')",
            (key,),
        ).rowcount

    def drop_athlete(self, athlete_id: int) -> int:
        """Remove the waiting and failed work of an athlete who left."""
        return self.store.db.execute(
            "DELETE FROM jobs WHERE athlete_id = ? AND state != 'running' "
            "AND kind != 'deauthorize'",
            (athlete_id,),
        ).rowcount

    def counts(self) -> dict[str, int]:
        """How many jobs wait, run and failed."""
        rows = self.store.db.execute(
            "SELECT state, count(*) AS n FROM jobs GROUP BY state"
        )
        counts = {"waiting": 0, "running": 0, "failed": 0}
        counts.update({row["state"]: row["n"] for row in rows})
        return counts

    def listing(self, state: str, limit: int = 50) -> list[dict[str, Any]]:
        """Jobs in one state, oldest first, for pages and the CLI."""
        rows = self.store.db.execute(
            "SELECT id, kind, athlete_id, object_id, priority, attempts, "
            "not_before, last_error, updated_at FROM jobs WHERE state = ? "
            "ORDER BY priority, id LIMIT ?",
            (state, limit),
        )
        return [dict(row) for row in rows]

    def _release(
        self, job: Job, state: str, not_before: float, error: str, undo: int
    ) -> None:
        with self.store.transaction() as db:
            # A newer waiting twin already carries this work; drop our copy.
            twin = db.execute(
                "SELECT id FROM jobs WHERE key = ? AND state = 'waiting'", (job.key,)
            ).fetchone()
            if twin is not None and state == "waiting":
                db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
                return
            db.execute(
                "UPDATE jobs SET state = ?, not_before = ?, last_error = ?, "
                "lease_until = NULL, attempts = attempts - ?, updated_at = ? "
                "WHERE id = ?",
                (state, not_before, error[:2000], undo, time.time(), job.id),
            )


def _job(row: Any) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        key=row["key"],
        athlete_id=row["athlete_id"],
        object_id=row["object_id"],
        priority=row["priority"],
        attempts=row["attempts"] + 1,
        payload=json.loads(row["payload"]),
    )


def _alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
