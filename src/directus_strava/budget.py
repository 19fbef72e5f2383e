"""One rate budget per Strava application, fed by every response's headers.

Strava reports limits and usage as "15min,daily" pairs in X-RateLimit-* (all
requests) and X-ReadRateLimit-* (reads). The 15-minute windows start on the
quarter hour and the daily one at midnight UTC. Nothing here is hard-coded:
until the first response arrives, the budget lets one request through to learn
the limits.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from directus_strava.clock import Clock
from directus_strava.store import Store

QUARTER = 900
DAY = 86400
STORE_KEY = "rate_budget"
# Bulk work leaves this share of each window to clicks and webhooks.
INTERACTIVE_RESERVE = 0.02


@dataclass
class Meter:
    """Usage against one limit pair, as of the window it was observed in."""

    limit_15: int
    limit_day: int
    usage_15: int
    usage_day: int
    quarter: int
    day: int

    def current(self, now: float) -> tuple[int, int]:
        """Usage in the windows that contain `now` (0 after a reset)."""
        used_15 = self.usage_15 if int(now // QUARTER) == self.quarter else 0
        used_day = self.usage_day if int(now // DAY) == self.day else 0
        return used_15, used_day

    def wait(self, now: float, reserve: float, cost: int) -> float:
        """Seconds until `cost` more requests fit, keeping `reserve` of limits."""
        used_15, used_day = self.current(now)
        if used_day + cost > self.limit_day - _held(self.limit_day, reserve):
            return (math.floor(now / DAY) + 1) * DAY - now
        if used_15 + cost > self.limit_15 - _held(self.limit_15, reserve):
            return (math.floor(now / QUARTER) + 1) * QUARTER - now
        return 0.0

    def spend(self, now: float) -> None:
        """Count one request made now."""
        self.usage_15, self.usage_day = self.current(now)
        self.usage_15 += 1
        self.usage_day += 1
        self.quarter, self.day = int(now // QUARTER), int(now // DAY)


def _held(limit: int, reserve: float) -> int:
    return math.ceil(limit * reserve) if reserve else 0


class RateBudget:
    """Decides whether a Strava request may be made now, and if not, when."""

    def __init__(self, clock: Clock, store: Store | None = None) -> None:
        self.clock = clock
        self.store = store
        self._lock = threading.Lock()
        self.overall: Meter | None = None
        self.read: Meter | None = None
        self.rejected = 0
        self._load()

    def wait(self, *, read: bool = True, bulk: bool = False, cost: int = 1) -> float:
        """Seconds to wait before `cost` more requests may go (0 means go)."""
        now = self.clock.now()
        reserve = INTERACTIVE_RESERVE if bulk else 0.0
        with self._lock:
            meters = [m for m in (self.overall, self.read if read else None) if m]
            return max((m.wait(now, reserve, cost) for m in meters), default=0.0)

    def spend(self, *, read: bool = True) -> None:
        """Count a request about to be sent, before its headers come back."""
        now = self.clock.now()
        with self._lock:
            for meter in (self.overall, self.read if read else None):
                if meter:
                    meter.spend(now)

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """Take limits and usage from a Strava response's headers."""
        now = self.clock.now()
        lowered = {key.lower(): value for key, value in headers.items()}
        overall = _meter(lowered, "x-ratelimit", now)
        read = _meter(lowered, "x-readratelimit", now)
        with self._lock:
            self.overall = overall or self.overall
            self.read = read or self.read
            self.rejected += status == 429
        self._save()

    def snapshot(self) -> dict[str, object]:
        """What the pages and the CLI show: used, limit, and when it resets."""
        now = self.clock.now()
        report: dict[str, object] = {"rejected": self.rejected}
        for name, meter in (("overall", self.overall), ("read", self.read)):
            if meter is None:
                continue
            used_15, used_day = meter.current(now)
            report[name] = {
                "used_15min": used_15,
                "limit_15min": meter.limit_15,
                "used_day": used_day,
                "limit_day": meter.limit_day,
            }
        report["resets_15min_at"] = (math.floor(now / QUARTER) + 1) * QUARTER
        report["resets_day_at"] = (math.floor(now / DAY) + 1) * DAY
        return report

    def daily_read_limit(self) -> int | None:
        """The daily read limit last reported, for estimates."""
        meter = self.read or self.overall
        return meter.limit_day if meter else None

    def _save(self) -> None:
        if self.store is None:
            return
        state = {
            "overall": asdict(self.overall) if self.overall else None,
            "read": asdict(self.read) if self.read else None,
        }
        self.store.put(STORE_KEY, json.dumps(state))

    def _load(self) -> None:
        raw = self.store.get(STORE_KEY) if self.store else None
        if not raw:
            return
        state = json.loads(raw)
        self.overall = Meter(**state["overall"]) if state.get("overall") else None
        self.read = Meter(**state["read"]) if state.get("read") else None


def _meter(headers: Mapping[str, str], prefix: str, now: float) -> Meter | None:
    limits = _pair(headers.get(f"{prefix}-limit"))
    usage = _pair(headers.get(f"{prefix}-usage"))
    if limits is None or usage is None:
        return None
    return Meter(
        limit_15=limits[0],
        limit_day=limits[1],
        usage_15=usage[0],
        usage_day=usage[1],
        quarter=int(now // QUARTER),
        day=int(now // DAY),
    )


def _pair(value: str | None) -> tuple[int, int] | None:
    try:
        first, second = (value or "").split(",")
        return int(first), int(second)
    except ValueError:
        return None
