"""The seeded generator: deterministic, realistic, consistent and cheap."""

from __future__ import annotations

import time

import polyline
import pytest

from strava_simulator import generator, streams
from strava_simulator.generator import SeedOptions
from strava_simulator.world import World

NOW = 1_760_000_000.0


def world(seed: int = 3, athletes: int = 2, per_athlete: int = 60) -> World:
    made = World()
    made.populate(seed, athletes, per_athlete, NOW, SeedOptions())
    return made


def test_same_seed_same_world() -> None:
    first, second = world(), world()
    assert list(first.activities) == list(second.activities)
    some = next(iter(first.activities.values()))
    twin = second.activities[some.id]
    assert generator.summary(some) == generator.summary(twin)


def test_other_seed_other_world() -> None:
    assert list(world(3).activities) != list(world(4).activities)


def test_towns_span_continents_and_tracks_stay_near_them() -> None:
    made = world(per_athlete=150)
    towns = {spec.town.name for spec in made.activities.values()}
    assert {"Keswick", "Kyoto", "Cape Town", "Queenstown", "Boulder"} <= towns
    for spec in list(made.activities.values())[:40]:
        plan = spec.track()
        if plan is None:
            continue
        for lat, lng in plan.waypoints:
            assert abs(lat - spec.town.lat) < 0.6
            assert abs(lng - spec.town.lng) < 1.0


def test_summary_polyline_is_the_track_at_precision_5() -> None:
    spec = next(
        s for s in world().activities.values() if s.kind == "gps" and not s.elapsed
    )
    plan = spec.track()
    assert plan is not None
    decoded = polyline.decode(generator.summary(spec)["map"]["summary_polyline"], 5)
    assert decoded == [pytest.approx(p, abs=1e-5) for p in plan.waypoints]
    points = streams.render_streams(plan)["latlng"]
    assert points[0] == list(plan.waypoints[0])
    assert points[-1] == list(plan.waypoints[-1])


def test_summary_figures_agree_with_streams() -> None:
    spec = next(
        s for s in world().activities.values() if s.sport == "Ride" and not s.tags
    )
    plan = spec.track()
    assert plan is not None
    body = generator.summary(spec)
    rendered = streams.render_streams(plan)
    heart = rendered["heartrate"]
    assert sum(heart) / len(heart) == pytest.approx(body["average_heartrate"], abs=1.5)
    watts = [w for w, m in zip(rendered["watts"], rendered["moving"], strict=True) if m]
    assert sum(watts) / len(watts) == pytest.approx(body["average_watts"], rel=0.05)
    assert max(rendered["altitude"]) == pytest.approx(body["elev_high"], abs=2)
    assert body["device_watts"] is True
    assert body["kilojoules"] > 0


def test_special_activities_exist() -> None:
    made = world()
    tags = [tag for spec in made.activities.values() for tag in spec.tags]
    assert tags.count("manual") == 2
    assert tags.count("only_me") == 2
    assert tags.count("weird_name") == 2
    assert tags.count("day_long") == 1


def test_tens_of_thousands_of_summaries_are_cheap() -> None:
    started = time.perf_counter()
    made = world(seed=9, athletes=2, per_athlete=10_000)
    built = time.perf_counter() - started
    specs = made.listing(next(iter(made.athletes)), None, None, True)[:200]
    started = time.perf_counter()
    page = [generator.summary(spec) for spec in specs]
    assert len(made.activities) == 20000
    assert len(page) == 200
    assert built < 10
    assert time.perf_counter() - started < 3
