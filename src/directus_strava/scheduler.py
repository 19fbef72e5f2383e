"""The timetable: polling, reconciliation and subscription checks, as jobs.

The scheduler only enqueues; the worker decides when Strava is called, under
the shared rate budget. Polling runs when webhooks are off, when no
subscription is known, or as a fallback when no event arrived for a while.
Reconciliation re-reads the last days daily, for the edits and deletions
webhooks do not announce. When each ran last is kept in the local database,
so a restart does not repeat them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from directus_strava.clock import Clock
from directus_strava.jobs import BULK, LIVE, SYNC, Queue
from directus_strava.settings import Settings
from directus_strava.store import Store
from directus_strava.webhooks import LAST_EVENT_KEY, SUBSCRIPTION_KEY
from directus_strava.worker import sync_payload

log = logging.getLogger(__name__)

DAY = 86400


@dataclass(frozen=True)
class Timetable:
    """How often each kind of background work is enqueued (seconds)."""

    webhooks: bool = True
    poll_interval: float = 1800
    webhook_silence: float = DAY
    reconcile_days: int = 7
    reconcile_interval: float = DAY
    check_interval: float = 6 * 3600
    # The first subscription check waits for the web server to listen.
    check_delay: float = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> Timetable:
        """The timetable the settings ask for."""
        return cls(
            webhooks=settings.webhooks,
            poll_interval=settings.poll_interval,
            webhook_silence=settings.webhook_silence,
            reconcile_days=settings.reconcile_days,
        )

    @property
    def tick(self) -> float:
        """How often the scheduler looks at the time."""
        return max(0.05, min(5.0, self.poll_interval / 10))


class Scheduler:
    """Enqueues sync, reconcile and subscription_check jobs when they are due."""

    def __init__(
        self, queue: Queue, store: Store, clock: Clock, timetable: Timetable
    ) -> None:
        self.queue = queue
        self.store = store
        self.clock = clock
        self.timetable = timetable
        self._started = clock.now()
        self._checked = False

    def run(self, stop: threading.Event) -> None:
        """Enqueue due work until `stop` is set."""
        while not stop.is_set():
            self.tick()
            self.clock.sleep(self.timetable.tick, stop)

    def tick(self) -> list[str]:
        """Enqueue whatever is due now; returns the kinds enqueued."""
        now = self.clock.now()
        due = []
        if self._check_due(now):
            self.queue.put("subscription_check", priority=LIVE)
            due.append("subscription_check")
        if self.polling(now) and self._due("poll", now, self.timetable.poll_interval):
            due.append(f"sync×{self._enqueue_syncs(now)}")
        if self.timetable.reconcile_days and self._due(
            "reconcile", now, self.timetable.reconcile_interval, first=False
        ):
            due.append(f"reconcile×{self._enqueue_reconciles(now)}")
        if due:
            log.info("event=scheduled jobs=%s", ",".join(due))
        return due

    def polling(self, now: float) -> bool:
        """True when Strava must be asked, because events do not come."""
        if not self.timetable.webhooks or self.store.get(SUBSCRIPTION_KEY) is None:
            return True
        last = float(self.store.get(LAST_EVENT_KEY) or self._started)
        return now - last >= self.timetable.webhook_silence

    def _check_due(self, now: float) -> bool:
        if not self.timetable.webhooks:
            return False
        if now - self._started < self.timetable.check_delay:
            return False
        if not self._checked:
            # Check once per start, whatever an earlier run did.
            self._checked = True
            self.store.put("scheduler:check", str(now))
            return True
        return self._due("check", now, self.timetable.check_interval)

    def _due(self, name: str, now: float, interval: float, first: bool = True) -> bool:
        """True (and noted) when `name` last ran `interval` ago; `first` says
        whether it runs at once on a fresh install or waits one interval."""
        key = f"scheduler:{name}"
        last = self.store.get(key)
        if last is None and not first:
            self.store.put(key, str(now))
            return False
        if last is not None and now - float(last) < interval:
            return False
        self.store.put(key, str(now))
        return True

    def _athletes(self) -> list[tuple[int, int | None]]:
        rows = self.store.db.execute(
            "SELECT id, last_sync_at FROM athletes "
            "WHERE token_status = 'ok' AND access_token IS NOT NULL"
        )
        return [(int(row["id"]), row["last_sync_at"]) for row in rows]

    def _enqueue_syncs(self, now: float) -> int:
        athletes = self._athletes()
        for athlete_id, last_sync_at in athletes:
            self.queue.put(
                "sync",
                athlete_id=athlete_id,
                priority=SYNC,
                payload=sync_payload(last_sync_at, now),
                key=f"sync:{athlete_id}:1",
            )
        return len(athletes)

    def _enqueue_reconciles(self, now: float) -> int:
        athletes = self._athletes()
        after = int(now - self.timetable.reconcile_days * DAY)
        for athlete_id, _ in athletes:
            self.queue.put(
                "reconcile",
                athlete_id=athlete_id,
                priority=BULK,
                payload={"after": after, "page": 1, "seen": []},
                key=f"reconcile:{athlete_id}:1",
            )
        return len(athletes)
