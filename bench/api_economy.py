"""API economy: Strava reads per activity, and a history's time on default limits.

Run: `python3 -m uv run python bench/api_economy.py [--n 2000] [--events 20]`.
A simulator process with N activities, Strava's default limits and a
simulated clock (sleeping fast-forwards it) serves a backfill into a real
local Directus: the reads spent until the listing is done are the
summary-only backfill, the reads until the last detail the full one. Then N
webhook create events are imported. Prints a table; exits 1 on a missed goal.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rig
from directus_strava import backfill
from directus_strava.jobs import Job
from directus_strava.service import Service
from local_directus import Instance
from strava_flow import SharedClock

START = 1_796_292_000.0  # 2026-12-03 10:00 UTC, on a quarter hour
QUARTER, DAY = 900, 86_400
PAGE = 200
SLACK = 1.05  # the history may take 5 % longer than the limits allow


@dataclass
class Result:
    """Reads per activity for each way in, and the history's duration."""

    activities: int
    summary_reads: int
    full_reads: int
    events: int
    webhook_reads: int
    duration_s: float
    minimum_s: float
    rejected: int
    real_s: float

    @property
    def summary_per_activity(self) -> float:
        return self.summary_reads / self.activities

    @property
    def full_per_activity(self) -> float:
        return self.full_reads / self.activities

    @property
    def webhook_per_activity(self) -> float:
        return self.webhook_reads / max(self.events, 1)

    @property
    def duration_ratio(self) -> float:
        return self.duration_s / self.minimum_s if self.minimum_s else 1.0

    @property
    def met(self) -> bool:
        return (
            self.webhook_per_activity <= 2
            and self.full_per_activity <= 2 + 1 / PAGE + 1 / self.activities
            and self.duration_ratio <= SLACK
            and self.rejected == 0
        )


def earliest_finish(start: float, reads: int, per_15: int, per_day: int) -> float:
    """The earliest moment the last of `reads` requests can go under the limits."""
    moment, used_day, left = start, 0, reads
    while True:
        room = min(per_15, per_day - used_day)
        if left <= room:
            return moment
        left, used_day = left - room, used_day + room
        following = (math.floor(moment / QUARTER) + 1) * QUARTER
        if following % DAY == 0 or used_day >= per_day:
            moment, used_day = (math.floor(moment / DAY) + 1) * DAY, 0
        else:
            moment = following


def listing_watch(service: Service, sim: rig.Simulator) -> dict[str, Any]:
    """Note the reads and the time when the backfill's listing is done."""
    seen: dict[str, Any] = {}
    handler = service.worker.handlers["backfill"]

    def watched(job: Job) -> dict[str, Any]:
        result = handler(job)
        if not result["listed"]:
            seen.update(reads=rig.reads(sim)["all"], at=service.clock.now())
        return result

    service.worker.handlers["backfill"] = watched
    return seen


def run(n: int = 2000, events: int = 20, instance: Instance | None = None) -> Result:
    """Backfill N activities on default limits, then import `events` by webhook."""
    if instance is None:
        with rig.directus("sqlite") as started:
            return run(n, events, started)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as data, rig.simulator(n, sim_clock=True) as sim:
        clock = SharedClock(sim, START)
        sim.control.set_rate_limits(reset=True, **rig.DEFAULT_LIMITS)
        port = rig.free_port()
        service, athlete = rig.service(
            sim,
            instance,
            Path(data),
            rig.collection(instance, "bench_economy"),
            clock=clock,
            service_port=port,
            service_public_url=f"http://127.0.0.1:{port}",
        )
        try:
            return _measure(service, sim, athlete, n, events, began)
        finally:
            service.close()


def _measure(
    service: Service,
    sim: rig.Simulator,
    athlete: int,
    n: int,
    events: int,
    began: float,
) -> Result:
    listing = listing_watch(service, sim)
    spent = rig.reads(sim)["all"]  # connecting may have read the athlete
    backfill.start(service.queue, athlete)
    service.worker.drain()
    duration = service.clock.now() - START
    full = rig.reads(sim)["all"] - spent
    limits = rig.DEFAULT_LIMITS
    ideal = 2 * n + math.ceil(n / PAGE)
    minimum = earliest_finish(START, ideal, limits["read_15min"], limits["read_daily"])
    webhook_reads = webhook_imports(service, sim, athlete, events)
    return Result(
        n,
        listing["reads"] - spent,
        full,
        events,
        webhook_reads,
        duration,
        minimum - START,
        service.budget.rejected,
        time.perf_counter() - began,
    )


def webhook_imports(
    service: Service, sim: rig.Simulator, athlete: int, events: int
) -> int:
    """Reads spent importing `events` new activities announced by webhook."""
    sim.control.set_rate_limits(reset=True, **rig.DEFAULT_LIMITS)
    with rig.serving(service):
        service.subscriptions.create()
        before = rig.reads(sim)["all"]
        for _ in range(events):
            sim.control.create_activity(athlete)
        sim.control.wait_for_deliveries(events, timeout=60 + events / 10)
    service.worker.drain()
    failed = service.queue.counts()["failed"]
    if failed:
        raise RuntimeError(f"{failed} jobs failed: {service.queue.listing('failed')}")
    return rig.reads(sim)["all"] - before


def report(result: Result) -> str:
    """The result as a table: figure, goal, verdict."""
    r = result

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    hours = r.duration_s / 3600
    rows = [
        (
            "reads/activity, summary-only backfill",
            f"{r.summary_per_activity:.4f}",
            f"{1 / PAGE:.4f} (1/200)",
            verdict(r.summary_reads <= math.ceil(r.activities / PAGE) + 1),
        ),
        (
            "reads/activity, full backfill",
            f"{r.full_per_activity:.4f}",
            f"{2 + 1 / PAGE:.4f} (2 + 1/200)",
            verdict(
                r.full_reads <= 2 * r.activities + math.ceil(r.activities / PAGE) + 1
            ),
        ),
        (
            "reads/activity, webhook import",
            f"{r.webhook_per_activity:.2f}",
            "2",
            verdict(r.webhook_per_activity <= 2),
        ),
        (
            f"{r.activities}-activity history, default limits",
            f"{hours:.2f} h",
            f"≤ {SLACK:.2f} × {r.minimum_s / 3600:.2f} h",
            f"{r.duration_ratio:.3f} ×, " + verdict(r.duration_ratio <= SLACK),
        ),
        ("429 responses", str(r.rejected), "0", verdict(r.rejected == 0)),
    ]
    return rig.table(("figure", "measured", "goal", "verdict"), rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    result = run(args.n, args.events)
    print(report(result))
    print(f"\n{result.real_s:.0f} s real time; {rig.machine()}")
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
