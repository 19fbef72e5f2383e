"""Sample tracks: the recorded NYC Marathon rebuilt around its route, and a day.

Strava recorded only the `distance` stream for activity 1946417534 (13,129
samples). Its GPS track is rebuilt by placing each sample at that distance
along the activity's detailed `map.polyline`, optionally with GPS-like noise,
and the other streams are made up deterministically around it. `day_long`
makes a 24-hour, 1 Hz track for size and memory checks.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import polyline

FIXTURES = Path(__file__).parent / "fixtures" / "strava"
EARTH_RADIUS_M = 6_371_008.8


def activity() -> dict[str, Any]:
    """The recorded DetailedActivity."""
    return json.loads((FIXTURES / "1946417534.json").read_text())  # type: ignore[no-any-return]


def recorded_streams() -> dict[str, Any]:
    """The recorded streams response (key_by_type form)."""
    return json.loads((FIXTURES / "1946417534.streams.json").read_text())  # type: ignore[no-any-return]


def streams(noise_m: float = 0.0, seed: int = 1946417534) -> dict[str, list[Any]]:
    """Unwrapped streams: the recorded distance plus rebuilt latlng and others."""
    distance: list[float] = recorded_streams()["distance"]["data"]
    route = polyline.decode(activity()["map"]["polyline"], 5)
    rng = random.Random(seed)
    latlng = [_jitter(p, noise_m, rng) for p in _along(route, distance)]
    size = len(distance)
    elapsed = activity()["elapsed_time"]
    return {
        "distance": distance,
        "latlng": latlng,
        "time": [round(i * elapsed / (size - 1)) for i in range(size)],
        "altitude": [round(8 + 6 * math.sin(d / 900), 1) for d in distance],
        "heartrate": [150 + (i // 60) % 25 for i in range(size)],
        "cadence": [88 + i % 5 for i in range(size)],
    }


def _along(route: list[tuple[float, float]], distance: list[float]) -> list[Any]:
    marks = [0.0]
    for a, b in itertools.pairwise(route):
        marks.append(marks[-1] + _metres(a, b))
    stretch = marks[-1] / max(distance[-1], 1.0)
    points = []
    for d in distance:
        at = min(d * stretch, marks[-1])
        i = max(1, bisect.bisect_left(marks, at))
        span = (marks[i] - marks[i - 1]) or 1.0
        f = (at - marks[i - 1]) / span
        (la, lo), (lb, lob) = route[i - 1], route[i]
        points.append([la + (lb - la) * f, lo + (lob - lo) * f])
    return points


def _jitter(point: list[float], noise_m: float, rng: random.Random) -> list[float]:
    if not noise_m:
        return [round(point[0], 6), round(point[1], 6)]
    north = rng.gauss(0, noise_m) / EARTH_RADIUS_M
    east = rng.gauss(0, noise_m) / (EARTH_RADIUS_M * math.cos(math.radians(point[0])))
    lat = point[0] + math.degrees(north)
    return [round(lat, 6), round(point[1] + math.degrees(east), 6)]


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[0] + b[0]) / 2)
    dy = math.radians(b[0] - a[0])
    dx = math.radians(b[1] - a[1]) * math.cos(lat)
    return EARTH_RADIUS_M * math.hypot(dx, dy)


def day_long(points: int = 86_400, seed: int = 7) -> dict[str, list[Any]]:
    """A 24-hour, 1 Hz wandering track with every stream GPX can carry."""
    rng = random.Random(seed)
    lat, lng, heading = 46.0, 7.0, 0.0
    latlng = []
    for _ in range(points):
        heading += rng.gauss(0, 0.05)
        lat += math.degrees(3 * math.cos(heading) / EARTH_RADIUS_M)
        lng += math.degrees(
            3 * math.sin(heading) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
        )
        latlng.append([round(lat, 6), round(lng, 6)])
    return {
        "latlng": latlng,
        "time": list(range(points)),
        "altitude": [round(500 + 200 * math.sin(i / 3000), 1) for i in range(points)],
        "heartrate": [110 + i % 40 for i in range(points)],
        "cadence": [80 + i % 10 for i in range(points)],
        "watts": [150 + i % 120 for i in range(points)],
        "temp": [12 + (i // 3600) % 10 for i in range(points)],
    }
