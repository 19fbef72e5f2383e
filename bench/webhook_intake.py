"""Webhook intake: how fast events are acknowledged, and imported, in bursts.

Run: `python3 -m uv run python bench/webhook_intake.py [--sizes 100,1000]`.
The service serves its callback with the worker running beside it, as
`directus-strava serve` does; a simulator process (real clock, no limits)
announces a burst of new activities, delivering each event as Strava does.
The acknowledgement latency is the simulator's, measured at Strava's end of
the connection; the time to Directus runs from the first event sent until
the last new item is there. Prints a table; exits 1 when an acknowledgement
took longer than Strava's 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import rig
from directus_strava.directus import DirectusClient
from local_directus import Instance

STRAVA_TIMEOUT_MS = 2000.0


@dataclass
class Result:
    """One burst: acknowledgement latencies and the time to Directus."""

    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    retried: int
    sent_s: float
    in_directus_s: float

    @property
    def met(self) -> bool:
        return self.max_ms < STRAVA_TIMEOUT_MS and self.retried == 0


def run(
    sizes: tuple[int, ...] = (100, 1000), instance: Instance | None = None
) -> list[Result]:
    """Send each burst of create events and time its intake and import."""
    if instance is None:
        with rig.directus("sqlite") as started:
            return run(sizes, started)
    with tempfile.TemporaryDirectory() as data, rig.simulator(3) as sim:
        port = rig.free_port()
        collection = rig.collection(instance, "bench_webhook")
        service, athlete = rig.service(
            sim,
            instance,
            Path(data),
            collection,
            service_port=port,
            service_public_url=f"http://127.0.0.1:{port}",
        )
        admin = DirectusClient(instance.url, instance.admin_token)
        try:
            with rig.serving(service, worker=True):
                service.subscriptions.create()
                return [burst(sim, admin, collection, athlete, n) for n in sizes]
        finally:
            admin.close()
            service.close()


def burst(
    sim: rig.Simulator, admin: DirectusClient, collection: str, athlete: int, n: int
) -> Result:
    """N new activities as fast as the simulator makes them; wait for all."""
    known = len(sim.control.deliveries())
    before = count(admin, collection)
    began = time.perf_counter()
    for _ in range(n):
        sim.control.create_activity(athlete)
    delivered = sim.control.wait_for_deliveries(known + n, timeout=60 + n)[known:]
    sent = time.perf_counter() - began
    while count(admin, collection) < before + n:
        if time.perf_counter() - began > 600 + 2 * n:
            raise TimeoutError(f"burst of {n}: not all items reached Directus")
        time.sleep(0.2)
    latencies = [d["attempts"][0]["latency_ms"] for d in delivered]
    retried = sum(len(d["attempts"]) > 1 or not d["delivered"] for d in delivered)
    return Result(
        n,
        statistics.median(latencies),
        percentile(latencies, 99),
        max(latencies),
        retried,
        sent,
        time.perf_counter() - began,
    )


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile (the largest value for very small samples)."""
    if len(values) < 2:
        return max(values)
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def count(admin: DirectusClient, collection: str) -> int:
    """Items in the collection."""
    found = admin.request(
        "GET", f"/items/{collection}", params={"aggregate[count]": "*"}
    )
    return int(found[0]["count"])


def report(results: list[Result]) -> str:
    """The results as a table."""
    rows = [
        (
            r.events,
            f"{r.p50_ms:.1f} ms",
            f"{r.p99_ms:.1f} ms",
            f"{r.max_ms:.1f} ms",
            f"< {STRAVA_TIMEOUT_MS:.0f} ms",
            r.retried,
            f"{r.sent_s:.1f} s",
            f"{r.in_directus_s:.1f} s",
            f"{r.events / r.in_directus_s:.1f}/s",
            "met" if r.met else "MISSED",
        )
        for r in results
    ]
    header = (
        "burst",
        "ack p50",
        "ack p99",
        "ack max",
        "goal",
        "retried",
        "all delivered",
        "last in Directus",
        "imported",
        "verdict",
    )
    return rig.table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    args = parser.parse_args()
    sizes = tuple(int(size) for size in args.sizes.split(","))
    results = run(sizes)
    print(report(results))
    print(f"\n{rig.machine()}")
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
