"""Routes: polyline decoding, Douglas-Peucker in metres, GeoJSON for Directus."""

from __future__ import annotations

import itertools
import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracks
from directus_strava.errors import StravaError
from directus_strava.routes import (
    decode_polyline,
    line_geojson,
    point_geojson,
    route_from_streams,
    simplify,
)

EARTH_RADIUS_M = 6_371_008.8
DIRECTUS_PAYLOAD_LIMIT = 1_000_000  # MAX_PAYLOAD_SIZE default, "1mb"


def _offset(origin: tuple[float, float], east_m: float, north_m: float) -> list[float]:
    lat = origin[0] + math.degrees(north_m / EARTH_RADIUS_M)
    scale = EARTH_RADIUS_M * math.cos(math.radians(origin[0]))
    return [lat, origin[1] + math.degrees(east_m / scale)]


def _segment_distance_m(p: Any, a: Any, b: Any) -> float:
    """Metres from p to segment ab, in a local plane centred on p."""
    scale = math.cos(math.radians(p[0]))

    def local(q: Any) -> tuple[float, float]:
        east = ((q[1] - p[1] + 540) % 360 - 180) * scale
        return (
            math.radians(east) * EARTH_RADIUS_M,
            math.radians(q[0] - p[0]) * EARTH_RADIUS_M,
        )

    (ax, ay), (bx, by) = local(a), local(b)
    dx, dy = bx - ax, by - ay
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length))
    return math.hypot(ax + t * dx, ay + t * dy)


def _size(geojson: dict[str, Any] | None) -> int:
    return len(json.dumps(geojson, separators=(",", ":")))


def test_decode_polyline_reads_precision_five() -> None:
    points = decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@")

    assert points == [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert decode_polyline("") == []


def test_malformed_polyline_raises_and_route_falls_back_to_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(StravaError, match="cannot be decoded"):
        decode_polyline("_p~iF~ps|U_ulL")

    with caplog.at_level(logging.WARNING, logger="directus_strava.routes"):
        assert route_from_streams(None, "_p~iF~ps|U_ulL") is None
    assert "event=route_polyline_malformed" in caplog.text


def test_simplify_keeps_short_tracks_and_skips_holes() -> None:
    assert simplify([]) == []
    assert simplify([None, (1.0, 2.0)]) == [(1.0, 2.0)]
    assert simplify([(1.0, 2.0), None, [1.5, 2.5], [99.0, 0.0]]) == [
        (1.0, 2.0),
        (1.5, 2.5),
    ]


def test_simplify_drops_points_within_tolerance_only() -> None:
    start = (45.0, 7.0)
    track = [_offset(start, 100.0 * i, 0.0) for i in range(11)]
    track[5] = _offset(start, 500.0, 10.0)  # a 10 m bulge halfway

    at_5m = simplify(track, tolerance_m=5.0)
    at_20m = simplify(track, tolerance_m=20.0)

    assert at_5m == [tuple(track[i]) for i in (0, 4, 5, 6, 10)]
    assert at_20m == [tuple(track[0]), tuple(track[10])]


def test_simplify_collapses_duplicates_to_endpoints() -> None:
    still = [[45.0, 7.0]] * 50

    assert simplify(still) == [(45.0, 7.0), (45.0, 7.0)]
    loop = [*still, [45.0001, 7.0], [45.0, 7.0]]
    assert simplify(loop) == [(45.0, 7.0), (45.0001, 7.0), (45.0, 7.0)]


def test_simplify_straight_line_across_antimeridian() -> None:
    track = [[-16.0, 179.99 + 0.001 * i] for i in range(20)]
    track = [[lat, lng - 360 if lng >= 180 else lng] for lat, lng in track]
    assert track[0][1] > 0 > track[-1][1]

    assert simplify(track) == [tuple(track[0]), tuple(track[-1])]


def test_geojson_uses_lng_lat_order() -> None:
    line = line_geojson([(40.6019371, -74.0600519), (40.7, -74.0)])

    assert line == {
        "type": "LineString",
        "coordinates": [[-74.060052, 40.601937], [-74.0, 40.7]],
    }
    assert line_geojson([(40.6, -74.0), None]) is None
    assert point_geojson([40.6, -74.0]) == {
        "type": "Point",
        "coordinates": [-74.0, 40.6],
    }
    assert point_geojson([]) is None
    assert point_geojson(None) is None


def test_route_prefers_stream_then_polyline() -> None:
    encoded = "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    stream = [[1.0, 2.0], [1.0, 2.001], [1.0, 2.002]]

    from_stream = route_from_streams(stream, encoded)
    from_polyline = route_from_streams([None], encoded)

    assert from_stream == {
        "type": "LineString",
        "coordinates": [[2.0, 1.0], [2.002, 1.0]],
    }
    assert from_polyline is not None
    assert from_polyline["coordinates"][0] == [-120.2, 38.5]
    assert route_from_streams(None, None) is None
    assert route_from_streams([], "") is None


def test_recorded_marathon_route_fits_directus_payload() -> None:
    latlng = tracks.streams(noise_m=1.5)["latlng"]

    route = route_from_streams(latlng, None)

    assert route is not None
    assert len(latlng) == 13_129
    assert len(route["coordinates"]) < len(latlng) // 5
    assert _size(route) < DIRECTUS_PAYLOAD_LIMIT // 20


def test_day_long_route_fits_directus_payload() -> None:
    latlng = tracks.day_long()["latlng"]

    route = route_from_streams(latlng, None)

    assert route is not None
    assert len(route["coordinates"]) < len(latlng) // 10
    assert _size(route) < DIRECTUS_PAYLOAD_LIMIT // 10


@st.composite
def wandering_tracks(draw: st.DrawFn) -> list[Any]:
    """Tracks of up to ~2 km around a random place, with holes and repeats."""
    origin = (
        draw(st.floats(-80, 80)),
        draw(st.one_of(st.floats(-180, 180), st.just(179.999))),
    )
    steps = st.tuples(st.floats(-150, 150), st.floats(-150, 150))
    points: list[Any] = []
    east = north = 0.0
    for step in draw(st.lists(st.one_of(steps, st.none(), st.just((0.0, 0.0))))):
        if step is None:
            points.append(None)
            continue
        east, north = east + step[0], north + step[1]
        lat, lng = _offset(origin, east, north)
        points.append([lat, (lng + 180) % 360 - 180])
    return points


@settings(max_examples=200, deadline=None)
@given(track=wandering_tracks(), tolerance=st.floats(0.5, 50))
def test_simplify_is_a_faithful_subset(track: list[Any], tolerance: float) -> None:
    clean = [tuple(p) for p in track if p is not None]

    kept = simplify(track, tolerance_m=tolerance)

    assert len(kept) <= len(clean)
    if len(clean) < 2:
        assert kept == clean
        return
    assert kept[0] == clean[0]
    assert kept[-1] == clean[-1]
    indices = _subsequence(kept, clean)
    for left, right in itertools.pairwise(indices):
        for dropped in clean[left + 1 : right]:
            distance = _segment_distance_m(dropped, clean[left], clean[right])
            assert distance <= tolerance * 1.001 + 1e-6


def _subsequence(kept: list[Any], clean: list[Any]) -> list[int]:
    """Indices of kept in clean, in order; fails if kept is not a subsequence."""
    indices: list[int] = []
    cursor = 0
    for point in kept:
        cursor = clean.index(point, cursor if not indices else cursor + 1)
        indices.append(cursor)
    return indices
