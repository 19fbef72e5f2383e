"""How long naming an activity's start and end places takes, after one load.

Run: `python3 -m uv run python bench/places_bench.py [N]`. Prints a table and
exits 1 when naming one activity takes longer than the goal.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from directus_strava import places

GOAL_MS = 5.0


@dataclass(frozen=True)
class Result:
    """Measured costs of `places.place_fields` over generated activities."""

    activities: int
    load_s: float
    reload_ms: float
    ms_per_activity: float
    named: int

    @property
    def met(self) -> bool:
        return self.ms_per_activity < GOAL_MS


def activities(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """N activities, start and end a few km apart, over land and sea alike."""
    rng = random.Random(seed)
    made = []
    for _ in range(n):
        lat, lng = rng.uniform(-45.0, 60.0), rng.uniform(-125.0, 150.0)
        end = [lat + rng.uniform(-0.05, 0.05), lng + rng.uniform(-0.05, 0.05)]
        made.append({"start_latlng": [lat, lng], "end_latlng": end})
    return made


def run(n: int = 1000) -> Result:
    """Time the one-time load, a second load, and naming N activities."""
    generated = activities(n)
    started = time.perf_counter()
    places.load()
    loaded = time.perf_counter()
    places.load()
    reloaded = time.perf_counter()

    fields = [places.place_fields(activity) for activity in generated]
    finished = time.perf_counter()

    named = sum(row["places_status"] == "ok" for row in fields)
    per_activity = (finished - reloaded) * 1000 / n
    reload_ms = (reloaded - loaded) * 1000
    return Result(n, loaded - started, reload_ms, per_activity, named)


def table(result: Result) -> str:
    """The result as a small text table."""
    rows = [
        ("activities (2 lookups each)", f"{result.activities}"),
        ("named (status ok)", f"{result.named}"),
        ("one-time load", f"{result.load_s * 1000:.0f} ms"),
        ("second load (cached)", f"{result.reload_ms:.3f} ms"),
        ("per activity", f"{result.ms_per_activity:.3f} ms"),
        ("goal per activity", f"< {GOAL_MS:.0f} ms"),
        ("verdict", "met" if result.met else "MISSED"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    result = run(n)
    print(table(result))
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
