"""Activity routes as small GeoJSON geometries for Directus.

Directus caps JSON bodies at 1 MB by default (`MAX_PAYLOAD_SIZE`): a
50,000-point LineString is refused. Routes are therefore thinned with
Douglas-Peucker at a tolerance in metres (5 m keeps the shape to well under
a pixel at city zoom). The points are projected to a local equirectangular
plane around the track's mean latitude, shapely (GEOS) simplifies there, and
the kept points are returned with their original coordinates.

The plane is exact along the mean latitude and stretches east-west distances
by cos(mean)/cos(lat) elsewhere, about 1.5 % per degree of latitude span at
45°: for an activity this moves the effective tolerance by centimetres.

Shortcoming: a route crossing the antimeridian is simplified correctly (the
longitudes are unwrapped first) but written as one LineString jumping from
+180 to -180; RFC 7946 asks for such lines to be cut in two. No activity
data seen so far crosses it, so the cut is left out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polyline
import shapely

from directus_strava.errors import StravaError

logger = logging.getLogger(__name__)

LatLng = tuple[float, float]

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
GEOJSON_DECIMALS = 6  # about 0.1 m, as RFC 7946 suggests; Strava sends 6 too


def decode_polyline(encoded: str) -> list[LatLng]:
    """Decode a Strava encoded polyline (precision 5) into (lat, lng) pairs."""
    if not encoded:
        return []
    try:
        points: list[LatLng] = polyline.decode(encoded, 5)
    except (IndexError, ValueError, TypeError) as exc:
        message = (
            f"the map polyline from Strava cannot be decoded ({len(encoded)} "
            "characters); the route is left empty, re-import the activity later"
        )
        raise StravaError(message) from exc
    return points


def simplify(
    points: Sequence[Sequence[float] | None], tolerance_m: float = 5.0
) -> list[LatLng]:
    """Keep the points Douglas-Peucker needs at `tolerance_m` metres, unchanged."""
    return _simplified(_clean(points), tolerance_m)


def line_geojson(points: Iterable[Sequence[float] | None]) -> dict[str, Any] | None:
    """A GeoJSON LineString ([lng, lat] order) or None below two points."""
    return _line(_clean(points))


def point_geojson(latlng: Sequence[float] | None) -> dict[str, Any] | None:
    """A GeoJSON Point for a Strava [lat, lng], or None when it is empty."""
    point = _pair(latlng)
    if point is None:
        return None
    return {"type": "Point", "coordinates": _lnglat(point)}


def route_from_streams(
    latlng: Sequence[Sequence[float] | None] | None,
    summary_polyline: str | None,
    tolerance_m: float = 5.0,
) -> dict[str, Any] | None:
    """The simplified route as GeoJSON, from the stream or else the polyline."""
    points = _clean(latlng or ())
    if len(points) < 2 and summary_polyline:
        points = _decoded(summary_polyline)
    return _line(_simplified(points, tolerance_m))


def _decoded(summary_polyline: str) -> list[LatLng]:
    try:
        return _clean(decode_polyline(summary_polyline))
    except StravaError:
        logger.warning("event=route_polyline_malformed chars=%d", len(summary_polyline))
        return []


def _simplified(track: list[LatLng], tolerance_m: float) -> list[LatLng]:
    if len(track) < 3 or tolerance_m <= 0:
        return track

    line = shapely.linestrings(_project(track))
    thin = shapely.simplify(line, tolerance_m, preserve_topology=False)
    kept = shapely.get_coordinates(thin, include_z=True)[:, 2]

    # GEOS may collapse a track of identical points to an empty line.
    if len(kept) < 2:
        return [track[0], track[-1]]
    return [track[int(index)] for index in kept]


def _line(track: list[LatLng]) -> dict[str, Any] | None:
    if len(track) < 2:
        return None
    coordinates = [_lnglat(point) for point in track]
    return {"type": "LineString", "coordinates": coordinates}


def _project(track: list[LatLng]) -> npt.NDArray[np.float64]:
    """Metres east and north of the first point, with the index as z."""
    coords = np.asarray(track, dtype=np.float64)
    lat = np.radians(coords[:, 0])
    # Unwrapping turns 179.9 -> -179.9 into 179.9 -> 180.1: one small step.
    lng = np.radians(np.unwrap(coords[:, 1], period=360.0))
    scale = EARTH_RADIUS_M * math.cos(float(lat.mean()))
    plane = np.empty((len(track), 3), dtype=np.float64)
    plane[:, 0] = (lng - lng[0]) * scale
    plane[:, 1] = (lat - lat[0]) * EARTH_RADIUS_M
    plane[:, 2] = np.arange(len(track))
    return plane


def _clean(points: Iterable[Sequence[float] | None]) -> list[LatLng]:
    return [pair for pair in map(_pair, points) if pair is not None]


def _pair(value: Any) -> LatLng | None:
    """A valid (lat, lng) from a Strava pair, or None for holes and junk."""
    if not _is_pair(value):
        return None
    lat, lng = value
    if not (_is_number(lat) and _is_number(lng)):
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    return (float(lat), float(lng))


def _is_pair(value: Any) -> bool:
    if type(value) is list or type(value) is tuple:  # the common case, fast
        return len(value) == 2
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return False
    return len(value) == 2


def _is_number(value: Any) -> bool:
    if type(value) is float or type(value) is int:  # the common case, fast
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lnglat(point: LatLng) -> list[float]:
    return [round(point[1], GEOJSON_DECIMALS), round(point[0], GEOJSON_DECIMALS)]
