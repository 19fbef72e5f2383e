"""Deterministic tracks and 1 Hz streams of generated activities.

A track is a plan: a loop of waypoints around a town plus a few smooth
functions of time and distance. Summaries read the plan's totals; streams,
laps and splits evaluate the same functions point by point, so all of them
agree without keeping any stream in memory.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from functools import lru_cache

import polyline

EARTH_RADIUS = 6_371_000.0
METRES_PER_DEGREE = 111_320.0
STREAM_TYPES = (
    "time",
    "latlng",
    "distance",
    "altitude",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "temp",
    "moving",
    "grade_smooth",
)


@dataclass(frozen=True)
class TrackRequest:
    """What a plan is built from: everything is derived from `key`."""

    key: str
    lat: float
    lng: float
    elevation: float
    distance: float
    speed: float
    cadence: float
    watts: float
    heartrate: float
    temperature: float
    hilliness: float
    elapsed: int = 0


@dataclass(frozen=True)
class Plan:
    """The shape of one GPS activity; see the module docstring."""

    waypoints: tuple[tuple[float, float], ...]
    cumulative: tuple[float, ...]
    distance: float
    moving_time: int
    pause_at: int
    pause: int
    wobble: float
    wobble_cycles: int
    hills: tuple[tuple[float, int, float], ...]
    elevation: float
    heartrate: float
    cadence: float
    watts: float
    temperature: float

    @property
    def elapsed_time(self) -> int:
        """Seconds from first to last sample, the stop included."""
        return self.moving_time + self.pause

    @property
    def points(self) -> int:
        """Samples at 1 Hz, both ends included."""
        return self.elapsed_time + 1

    def moving_seconds(self, t: int) -> float:
        """Seconds in motion at elapsed second `t`."""
        if t < self.pause_at:
            return float(t)
        if t < self.pause_at + self.pause:
            return float(self.pause_at)
        return float(t - self.pause)

    def is_moving(self, t: int) -> bool:
        """False while stopped in the middle of the activity."""
        return not (self.pause_at <= t < self.pause_at + self.pause)

    def distance_at(self, tau: float) -> float:
        """Metres covered after `tau` seconds of motion (monotonic)."""
        phase = 2 * math.pi * self.wobble_cycles * tau / self.moving_time
        drift = self.wobble * math.sin(phase) / (2 * math.pi * self.wobble_cycles)
        return self.distance * (tau / self.moving_time + drift)

    def speed_at(self, tau: float) -> float:
        """Metres per second after `tau` seconds of motion."""
        phase = 2 * math.pi * self.wobble_cycles * tau / self.moving_time
        return self.distance / self.moving_time * (1 + self.wobble * math.cos(phase))

    def altitude_at(self, metres: float) -> float:
        """Metres above sea level `metres` along the track."""
        u = metres / self.distance if self.distance else 0.0
        height = self.elevation
        for amplitude, cycles, phase in self.hills:
            angle = 2 * math.pi * cycles * u + phase
            height += amplitude * (math.sin(angle) - math.sin(phase))
        return height

    def grade_at(self, metres: float) -> float:
        """Percent slope `metres` along the track."""
        u = metres / self.distance if self.distance else 0.0
        slope = 0.0
        for amplitude, cycles, phase in self.hills:
            angle = 2 * math.pi * cycles * u + phase
            slope += amplitude * 2 * math.pi * cycles * math.cos(angle)
        return 100 * slope / self.distance if self.distance else 0.0

    def heartrate_at(self, tau: float) -> float:
        """Beats per minute after `tau` seconds of motion."""
        u = tau / self.moving_time
        return self.heartrate + 12 * u + 7 * math.sin(2 * math.pi * 5 * u)

    def cadence_at(self, tau: float) -> float:
        """Steps or revolutions per minute after `tau` seconds of motion."""
        u = tau / self.moving_time
        return self.cadence + 3 * math.sin(2 * math.pi * 11 * u)

    def watts_at(self, tau: float) -> float:
        """Power after `tau` seconds of motion, higher uphill."""
        grade = self.grade_at(self.distance_at(tau))
        u = tau / self.moving_time
        wave = 1 + 0.15 * math.sin(2 * math.pi * 17 * u)
        return max(0.0, self.watts * wave + 12 * grade)

    def temperature_at(self, tau: float) -> float:
        """Degrees Celsius after `tau` seconds of motion."""
        return self.temperature + 3 * math.sin(math.pi * tau / self.moving_time)

    def latlng_at(self, metres: float) -> tuple[float, float]:
        """The point `metres` along the waypoints, interpolated linearly."""
        index = bisect.bisect_right(self.cumulative, metres) - 1
        index = min(max(index, 0), len(self.waypoints) - 2)
        start, end = self.waypoints[index], self.waypoints[index + 1]
        length = self.cumulative[index + 1] - self.cumulative[index]
        share = (metres - self.cumulative[index]) / length if length else 0.0
        share = min(max(share, 0.0), 1.0)
        lat = start[0] + (end[0] - start[0]) * share
        lng = start[1] + (end[1] - start[1]) * share
        return (lat, lng)

    def index_at(self, tau: float) -> int:
        """The stream index of `tau` seconds of motion."""
        t = round(tau)
        return t if t <= self.pause_at else t + self.pause

    def moving_for(self, metres: float) -> float:
        """Seconds of motion needed to cover `metres` (bisection)."""
        low, high = 0.0, float(self.moving_time)
        for _ in range(40):
            middle = (low + high) / 2
            if self.distance_at(middle) < metres:
                low = middle
            else:
                high = middle
        return high


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle metres between two (lat, lng) points."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2
    h += math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(math.sqrt(h))


@lru_cache(maxsize=8192)
def plan_track(request: TrackRequest) -> Plan:
    """The plan for one activity, the same for the same request."""
    rng = random.Random(request.key)
    waypoints = _loop(rng, request)
    cumulative = _cumulative(waypoints)
    distance = cumulative[-1]
    pause = 0 if rng.random() < 0.3 else rng.randint(20, 240)
    if request.elapsed:
        pause = max(1, request.elapsed // 12)
        moving = request.elapsed - pause
    else:
        moving = max(60, int(distance / request.speed))
    hills = tuple(
        (
            request.hilliness * rng.uniform(0.3, 1.0) / cycles,
            cycles,
            rng.uniform(0, 6.28),
        )
        for cycles in (1, rng.randint(2, 5), rng.randint(6, 12))
    )
    return Plan(
        waypoints=waypoints,
        cumulative=cumulative,
        distance=distance,
        moving_time=moving,
        pause_at=moving // 2,
        pause=pause,
        wobble=rng.uniform(0.05, 0.2),
        wobble_cycles=rng.randint(3, 9),
        hills=hills,
        elevation=request.elevation + rng.uniform(-10, 40),
        heartrate=request.heartrate + rng.uniform(-8, 8),
        cadence=request.cadence,
        watts=request.watts * rng.uniform(0.85, 1.15),
        temperature=request.temperature + rng.uniform(-4, 4),
    )


def _loop(rng: random.Random, request: TrackRequest) -> tuple[tuple[float, float], ...]:
    """Waypoints of a wobbly loop whose length is near the target."""
    count = rng.randint(24, 48)
    radius = request.distance / (2 * math.pi * 1.1)
    turn = rng.uniform(0, 2 * math.pi)
    shapes = [(rng.randint(2, 5), rng.uniform(0, 6.28), rng.uniform(0.05, 0.2))]
    shapes.append((rng.randint(6, 9), rng.uniform(0, 6.28), rng.uniform(0.02, 0.06)))
    centre_lat = request.lat + rng.uniform(-0.01, 0.01)
    centre_lng = request.lng + rng.uniform(-0.01, 0.01)
    points = []
    for k in range(count + 1):
        theta = turn + 2 * math.pi * k / count
        scale = 1 + sum(a * math.sin(f * theta + p) for f, p, a in shapes)
        if k == count:
            scale *= 0.97  # finish a few metres short of the start, as people do
        north = radius * scale * math.sin(theta)
        east = radius * scale * math.cos(theta)
        lat = centre_lat + north / METRES_PER_DEGREE
        lng = centre_lng + east / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
        points.append((round(lat, 6), round(lng, 6)))
    return tuple(points)


def _cumulative(points: tuple[tuple[float, float], ...]) -> tuple[float, ...]:
    """Running distance along `points`, starting at 0."""
    total = [0.0]
    for a, b in itertools.pairwise(points):
        total.append(total[-1] + haversine(a, b))
    return tuple(total)


def summary_polyline(plan: Plan) -> str:
    """The coarse polyline (precision 5) through the plan's waypoints."""
    return str(polyline.encode(list(plan.waypoints), 5))


def detailed_polyline(plan: Plan) -> str:
    """A denser polyline: every waypoint plus three points per segment."""
    points: list[tuple[float, float]] = []
    for a, b in zip(plan.waypoints, plan.waypoints[1:], strict=False):
        for step in range(4):
            share = step / 4
            points.append((a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share))
    points.append(plan.waypoints[-1])
    return str(polyline.encode(points, 5))


@dataclass(frozen=True)
class Totals:
    """The summary figures of a plan, from a coarse sample of its functions."""

    elevation_gain: float
    elev_high: float
    elev_low: float
    average_heartrate: float
    max_heartrate: float
    average_watts: float
    max_watts: float
    average_cadence: float
    average_temp: float


@lru_cache(maxsize=8192)
def totals(plan: Plan) -> Totals:
    """Summary figures computed on 256 samples of the plan."""
    samples = [plan.moving_time * i / 256 for i in range(257)]
    heights = [plan.altitude_at(plan.distance_at(tau)) for tau in samples]
    gain = sum(max(0.0, b - a) for a, b in itertools.pairwise(heights))
    rates = [plan.heartrate_at(tau) for tau in samples]
    power = [plan.watts_at(tau) for tau in samples] if plan.watts else [0.0]
    cadence = [plan.cadence_at(tau) for tau in samples]
    return Totals(
        elevation_gain=round(gain, 1),
        elev_high=round(max(heights), 1),
        elev_low=round(min(heights), 1),
        average_heartrate=round(sum(rates) / len(rates), 1),
        max_heartrate=float(round(max(rates))),
        average_watts=round(sum(power) / len(power), 1),
        max_watts=float(round(max(power))),
        average_cadence=round(sum(cadence) / len(cadence), 1),
        average_temp=float(round(plan.temperature_at(plan.moving_time / 2))),
    )


@lru_cache(maxsize=4)
def render_streams(plan: Plan) -> dict[str, list[object]]:
    """Every stream of the plan at 1 Hz (kept for the last few plans only)."""
    times = list(range(plan.points))
    taus = [plan.moving_seconds(t) for t in times]
    moving = [plan.is_moving(t) for t in times]
    metres = [plan.distance_at(tau) for tau in taus]
    streams: dict[str, list[object]] = {
        "time": list(times),
        "latlng": [_rounded(plan.latlng_at(m)) for m in metres],
        "distance": [round(m, 1) for m in metres],
        "altitude": [round(plan.altitude_at(m), 1) for m in metres],
        "velocity_smooth": [
            round(plan.speed_at(tau), 3) if go else 0.0
            for tau, go in zip(taus, moving, strict=True)
        ],
        "heartrate": [round(plan.heartrate_at(tau)) for tau in taus],
        "cadence": [
            round(plan.cadence_at(tau)) if go else 0
            for tau, go in zip(taus, moving, strict=True)
        ],
        "temp": [round(plan.temperature_at(tau)) for tau in taus],
        "moving": list(moving),
        "grade_smooth": [round(plan.grade_at(m), 1) for m in metres],
    }
    if plan.watts:
        streams["watts"] = [
            round(plan.watts_at(tau)) if go else 0
            for tau, go in zip(taus, moving, strict=True)
        ]
    return streams


def _rounded(point: tuple[float, float]) -> list[float]:
    """A [lat, lng] pair at Strava's six decimals."""
    return [round(point[0], 6), round(point[1], 6)]


def pieces(plan: Plan, length: float) -> list[tuple[float, float]]:
    """(start, end) seconds of motion of consecutive `length`-metre pieces."""
    bounds = [0.0]
    metres = length
    while metres < plan.distance:
        bounds.append(plan.moving_for(metres))
        metres += length
    bounds.append(float(plan.moving_time))
    return list(itertools.pairwise(bounds))
