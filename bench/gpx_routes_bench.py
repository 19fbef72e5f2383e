"""How fast GPX files are built and how small simplified routes get.

Run: `python3 -m uv run python bench/gpx_routes_bench.py`. Prints one line per
measurement and exits 1 when a 10,000-point GPX takes longer than the goal or
a route would not fit Directus's default 1 MB JSON body.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

import tracks  # the sample tracks live with the tests
from directus_strava.gpx import build_gpx
from directus_strava.routes import route_from_streams

GOAL_MS_10K = 60.0  # all seven streams; about 30 ms with latlng/time/ele/hr
PAYLOAD_LIMIT = 1_000_000


def best_ms(action: Callable[[], Any], repeat: int = 5) -> float:
    """The fastest of `repeat` runs, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def gpx_lines() -> bool:
    """Time GPX building for 10,000 and 86,400 points; True if within goal."""
    activity = {"id": 1, "name": "Ride 🚴", "start_date": "2018-11-13T15:39:39Z"}
    day = tracks.day_long()
    ten_k = {kind: data[:10_000] for kind, data in day.items()}
    few = {kind: ten_k[kind] for kind in ("latlng", "time", "altitude", "heartrate")}
    full_ms = best_ms(lambda: build_gpx(activity, ten_k))
    print(f"gpx 10,000 points, 7 streams: {full_ms:.1f} ms")
    few_ms = best_ms(lambda: build_gpx(activity, few))
    print(f"gpx 10,000 points, 4 streams: {few_ms:.1f} ms")

    tracemalloc.start()
    gpx = build_gpx(activity, day) or b""
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    day_ms = best_ms(lambda: build_gpx(activity, day), repeat=3)
    print(
        f"gpx 86,400 points: {day_ms:.0f} ms, {len(gpx) / 1e6:.1f} MB,"
        f" peak {peak / 1e6:.1f} MB while building"
    )
    return full_ms < GOAL_MS_10K


def route_lines() -> bool:
    """Simplify sample tracks at 5 m; True if every route fits Directus."""
    samples = {
        "marathon 13,129 points, on the polyline": tracks.streams(0.0)["latlng"],
        "marathon 13,129 points, 1.5 m noise": tracks.streams(1.5)["latlng"],
        "marathon 13,129 points, 3 m noise": tracks.streams(3.0)["latlng"],
        "day 86,400 points": tracks.day_long()["latlng"],
    }
    fits = True
    for label, latlng in samples.items():
        route = route_from_streams(latlng, None) or {"coordinates": []}
        size = len(json.dumps(route, separators=(",", ":")))
        took = best_ms(partial(route_from_streams, latlng, None))
        kept = len(route["coordinates"])
        share = 100 * kept / len(latlng)
        print(f"route {label}: kept {kept} ({share:.1f} %), {size:,} B, {took:.1f} ms")
        fits = fits and size < PAYLOAD_LIMIT
    return fits


if __name__ == "__main__":
    sys.exit(0 if gpx_lines() & route_lines() else 1)
