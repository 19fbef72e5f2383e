"""Strava's per-application rate limits: 15-minute and daily windows."""

from __future__ import annotations

from dataclasses import asdict, dataclass

QUARTER = 900
DAY = 86_400


@dataclass
class Limits:
    """Allowed requests per window; defaults are Strava's for a new app."""

    overall_15min: int = 200
    overall_daily: int = 2000
    read_15min: int = 100
    read_daily: int = 1000


@dataclass
class Usage:
    """Requests counted in the current windows."""

    quarter: int = -1
    day: int = -1
    overall_15min: int = 0
    overall_daily: int = 0
    read_15min: int = 0
    read_daily: int = 0


class RateLimiter:
    """Counts requests per application on the simulator's clock.

    Windows start at :00, :15, :30 and :45 and at 00:00 UTC. Every request
    counts toward the overall limits and GETs also toward the read limits;
    refused requests count too, as on Strava.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._usage: dict[int, Usage] = {}

    def reset(self) -> None:
        """Forget all usage."""
        self._usage.clear()

    def current(self, client_id: int, now: float) -> Usage:
        """Usage of `client_id`, rolled over to the windows of `now`."""
        usage = self._usage.setdefault(client_id, Usage())
        quarter, day = int(now // QUARTER), int(now // DAY)
        if usage.quarter != quarter:
            usage.quarter, usage.overall_15min, usage.read_15min = quarter, 0, 0
        if usage.day != day:
            usage.day, usage.overall_daily, usage.read_daily = day, 0, 0
        return usage

    def count(self, client_id: int, now: float, read: bool) -> bool:
        """Count one request; False when it is over a limit."""
        usage = self.current(client_id, now)
        usage.overall_15min += 1
        usage.overall_daily += 1
        if read:
            usage.read_15min += 1
            usage.read_daily += 1
        return not self.exceeded(usage, read)

    def exceeded(self, usage: Usage, read: bool) -> bool:
        """True when `usage` is past an overall limit, or a read one for reads."""
        limits = self.limits
        over = usage.overall_15min > limits.overall_15min
        over = over or usage.overall_daily > limits.overall_daily
        if read:
            over = over or usage.read_15min > limits.read_15min
            over = over or usage.read_daily > limits.read_daily
        return over

    def headers(self, client_id: int, now: float) -> dict[str, str]:
        """The four rate-limit headers, each "15min,daily"."""
        usage, limits = self.current(client_id, now), self.limits
        return {
            "X-RateLimit-Limit": f"{limits.overall_15min},{limits.overall_daily}",
            "X-RateLimit-Usage": f"{usage.overall_15min},{usage.overall_daily}",
            "X-ReadRateLimit-Limit": f"{limits.read_15min},{limits.read_daily}",
            "X-ReadRateLimit-Usage": f"{usage.read_15min},{usage.read_daily}",
        }

    def describe(self, client_id: int, now: float) -> dict[str, object]:
        """Limits and usage as JSON for the control API."""
        usage = self.current(client_id, now)
        return {"limits": asdict(self.limits), "usage": asdict(usage)}
