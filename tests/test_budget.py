"""The rate budget: fed by Strava's headers, waiting for the next window."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from directus_strava.budget import RateBudget
from directus_strava.store import Store


class FixedClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.t += seconds
        return stop.is_set()


# 2026-12-03 10:07:00 UTC: 8 minutes before the next quarter hour.
NOON_ISH = 1796292420.0


def headers(
    usage_15: int, usage_day: int, read_15: int, read_day: int
) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "200,2000",
        "X-RateLimit-Usage": f"{usage_15},{usage_day}",
        "X-ReadRateLimit-Limit": "100,1000",
        "X-ReadRateLimit-Usage": f"{read_15},{read_day}",
    }


def test_unknown_limits_let_one_request_through() -> None:
    budget = RateBudget(FixedClock(NOON_ISH))
    assert budget.wait() == 0.0


def test_spent_quarter_waits_for_next_quarter_hour() -> None:
    clock = FixedClock(NOON_ISH)
    budget = RateBudget(clock)
    budget.observe(headers(100, 100, 100, 100), 200)
    assert budget.wait() == pytest.approx(8 * 60)
    clock.t += 8 * 60
    assert budget.wait() == 0.0


def test_spent_day_waits_for_midnight_utc() -> None:
    clock = FixedClock(NOON_ISH)
    budget = RateBudget(clock)
    budget.observe(headers(10, 1000, 10, 1000), 200)
    midnight = (NOON_ISH // 86400 + 1) * 86400
    assert budget.wait() == pytest.approx(midnight - NOON_ISH)


def test_cost_counts_every_request_of_a_job() -> None:
    budget = RateBudget(FixedClock(NOON_ISH))
    budget.observe(headers(99, 99, 99, 99), 200)
    assert budget.wait(cost=1) == 0.0
    assert budget.wait(cost=2) > 0


def test_bulk_work_leaves_a_reserve_for_interactive_work() -> None:
    budget = RateBudget(FixedClock(NOON_ISH))
    budget.observe(headers(98, 98, 98, 98), 200)
    assert budget.wait(bulk=False) == 0.0
    assert budget.wait(bulk=True) > 0


def test_spend_counts_before_headers_arrive() -> None:
    budget = RateBudget(FixedClock(NOON_ISH))
    budget.observe(headers(0, 0, 99, 99), 200)
    budget.spend()
    assert budget.wait() > 0


def test_budget_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    clock = FixedClock(NOON_ISH)
    RateBudget(clock, store).observe(headers(5, 700, 100, 999), 200)
    again = RateBudget(clock, Store(tmp_path / "db.sqlite3"))
    assert again.wait() > 0
    assert again.snapshot()["read"] == {
        "used_15min": 100,
        "limit_15min": 100,
        "used_day": 999,
        "limit_day": 1000,
    }


def test_malformed_headers_are_ignored() -> None:
    budget = RateBudget(FixedClock(NOON_ISH))
    budget.observe({"X-RateLimit-Limit": "lots", "X-RateLimit-Usage": "1"}, 200)
    assert budget.overall is None
