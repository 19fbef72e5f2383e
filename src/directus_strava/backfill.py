"""The history import through the API: plans, progress and estimates.

A backfill lists an athlete's activities 200 at a time, writing every summary
(with its summary-polyline route) to Directus as each page arrives, and
enqueues one `deepen` job per activity, newest first, for the detail and
streams. The worker runs both kinds of job (see worker.py); this module keeps
what the CLI and the pages need: the athlete's plan and pause flag in the
store's key-value table, and progress counted from the import ledger, so a
killed service loses nothing and counts nothing twice.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from directus_strava.budget import DAY, INTERACTIVE_RESERVE, QUARTER, RateBudget
from directus_strava.jobs import BULK, Queue
from directus_strava.store import Store

# Listing pages run before the deepening of what they listed: summaries first.
LIST_PRIORITY = BULK
DEEPEN_PRIORITY = BULK + 1
DEEPEN_COST = 2
KINDS = ("backfill", "deepen")
# A paused athlete's jobs wait this long, unless resumed first.
PAUSED_FOR = 10 * 365 * DAY


@dataclass
class Plan:
    """One athlete's backfill: its range, pause flag and listing progress."""

    athlete_id: int
    after: int | None = None
    before: int | None = None
    paused: bool = False
    pages_listed: int = 0
    listing_done: bool = False
    started_at: float = 0.0

    @classmethod
    def load(cls, store: Store, athlete_id: int) -> Plan | None:
        """The athlete's plan, if a backfill was ever started."""
        raw = store.get(_key(athlete_id))
        return cls(**json.loads(raw)) if raw else None

    def save(self, store: Store) -> None:
        """Keep the plan for the worker, the CLI and the pages."""
        store.put(_key(self.athlete_id), json.dumps(asdict(self)))


def _key(athlete_id: int) -> str:
    return f"backfill:{athlete_id}"


def start(
    queue: Queue,
    athlete_id: int,
    after: int | None = None,
    before: int | None = None,
) -> Plan:
    """Begin (or begin again) an athlete's backfill; done work is skipped."""
    plan = Plan(athlete_id, after, before, started_at=time.time())
    plan.save(queue.store)
    payload = {"page": 1, "after": after, "before": before}
    queue.put(
        "backfill",
        athlete_id=athlete_id,
        priority=LIST_PRIORITY,
        payload=payload,
        key=f"backfill:{athlete_id}:1",
    )
    return plan


def pause(queue: Queue, athlete_id: int, now: float) -> None:
    """Hold an athlete's backfill jobs until `resume`."""
    _set_paused(queue.store, athlete_id, True)
    queue.store.db.execute(
        "UPDATE jobs SET not_before = ? WHERE athlete_id = ? AND state = 'waiting' "
        "AND kind IN ('backfill', 'deepen')",
        (now + PAUSED_FOR, athlete_id),
    )


def resume(queue: Queue, athlete_id: int) -> None:
    """Let a paused backfill go on where it stopped."""
    _set_paused(queue.store, athlete_id, False)
    queue.store.db.execute(
        "UPDATE jobs SET not_before = 0 WHERE athlete_id = ? AND state = 'waiting' "
        "AND kind IN ('backfill', 'deepen')",
        (athlete_id,),
    )


def _set_paused(store: Store, athlete_id: int, paused: bool) -> None:
    plan = Plan.load(store, athlete_id) or Plan(athlete_id)
    plan.paused = paused
    plan.save(store)


def is_paused(store: Store, athlete_id: int | None) -> bool:
    """True when the athlete's backfill is paused."""
    plan = Plan.load(store, athlete_id) if athlete_id else None
    return plan is not None and plan.paused


def athlete_progress(store: Store, plan: Plan) -> dict[str, Any]:
    """Listed, deepened and remaining activities of one athlete's backfill."""
    start_from, end_at = _range_dates(plan)
    row = store.db.execute(
        "SELECT count(*) AS total, "
        "sum(level = 'detail' AND coalesce(source, 'api') != 'archive' "
        "OR state IN ('failed', 'deleted')) AS done "
        "FROM ledger WHERE athlete_id = ? AND start_date >= ? AND start_date < ?",
        (plan.athlete_id, start_from, end_at),
    ).fetchone()
    waiting = store.db.execute(
        "SELECT count(*) AS n FROM jobs WHERE athlete_id = ? AND kind IN "
        "('backfill', 'deepen') AND state IN ('waiting', 'running')",
        (plan.athlete_id,),
    ).fetchone()["n"]
    total, done = int(row["total"] or 0), int(row["done"] or 0)
    return {
        **asdict(plan),
        "total": total,
        "done": done,
        "finished": plan.listing_done and waiting == 0,
        "requests_left": DEEPEN_COST * (total - done) + (not plan.listing_done),
    }


def _range_dates(plan: Plan) -> tuple[str, str]:
    def iso(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Strava's `after`/`before` are exclusive; whole seconds make that moot here.
    return iso(plan.after or 0), iso(plan.before) if plan.before else "9999"


def backfill_progress(store: Store, budget: RateBudget) -> dict[str, Any]:
    """Every athlete's backfill with totals and an estimated finish (epoch).

    The estimate spends the requests still needed (two per activity left and
    one per listing page) at the read limits Strava last reported, window by
    window; it is None until a response has shown those limits.
    """
    rows = store.db.execute("SELECT key FROM kv WHERE key LIKE 'backfill:%'")
    plans = [Plan.load(store, int(r["key"].split(":")[1])) for r in rows]
    athletes = [athlete_progress(store, plan) for plan in plans if plan]
    left = sum(a["requests_left"] for a in athletes if not a["paused"])
    return {
        "athletes": athletes,
        "total": sum(a["total"] for a in athletes),
        "done": sum(a["done"] for a in athletes),
        "requests_left": left,
        "finished": all(a["finished"] for a in athletes),
        "estimated_finish": estimate_finish(budget, left),
    }


def estimate_finish(budget: RateBudget, requests: int) -> float | None:
    """When `requests` more bulk reads will have been made, as an epoch."""
    now = budget.clock.now()
    if requests <= 0:
        return now
    snapshot = budget.snapshot()
    meter = snapshot.get("read") or snapshot.get("overall")
    if not isinstance(meter, dict):
        return None
    return _walk_windows(now, requests, meter)


def _walk_windows(now: float, requests: int, meter: dict[str, int]) -> float | None:
    """Spend `requests` quarter by quarter, day by day, under the limits."""
    per_15 = meter["limit_15min"] - math.ceil(
        meter["limit_15min"] * INTERACTIVE_RESERVE
    )
    per_day = meter["limit_day"] - math.ceil(meter["limit_day"] * INTERACTIVE_RESERVE)
    used_15, used_day = meter["used_15min"], meter["used_day"]
    moment, left = now, requests
    while per_15 > 0 and per_day > 0:
        room = max(0, min(per_15 - used_15, per_day - used_day))
        if left <= room:
            return moment
        left -= room
        used_day += room
        next_quarter = (math.floor(moment / QUARTER) + 1) * QUARTER
        if used_day >= per_day or next_quarter % DAY == 0:
            moment, used_day = (math.floor(moment / DAY) + 1) * DAY, 0
        else:
            moment = next_quarter
        used_15 = 0
    return None
