"""GPX built from Strava streams: schema validity, times, escaping, holes."""

from __future__ import annotations

import math
import tracemalloc
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import tracks
from directus_strava.gpx import build_gpx, has_track, unwrap_streams

Streams = dict[str, list[Any]]
XSD = Path(__file__).parent / "fixtures" / "xsd"
NS = {
    "g": "http://www.topografix.com/GPX/1/1",
    "gpxtpx": "http://www.garmin.com/xmlschemas/TrackPointExtension/v1",
    "pwr": "http://www.garmin.com/xmlschemas/PowerExtension/v1",
}
PUBLISHED = {
    "http://www.topografix.com/GPX/1/1/gpx.xsd": "gpx.xsd",
    "http://www.garmin.com/xmlschemas/TrackPointExtensionv1.xsd": (
        "TrackPointExtensionv1.xsd"
    ),
    "http://www.garmin.com/xmlschemas/PowerExtensionv1.xsd": "PowerExtensionv1.xsd",
}
RIDE = {
    "id": 42,
    "name": "Lunch ride",
    "start_date": "2018-11-13T15:39:39Z",
    "sport_type": "Ride",
    "type": "Ride",
}


class _LocalSchemas(etree.Resolver):
    """Serve schemas imported by their published URL from tests/fixtures/xsd."""

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        name = PUBLISHED.get(url)
        if name is None:
            return None
        return self.resolve_filename(str(XSD / name), context)


def _schema() -> etree.XMLSchema:
    # wrapper.xsd imports GPX 1.1 and TrackPointExtension v1; the power
    # namespace is added here so pwr:PowerInWatts is checked strictly too.
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    wrapper = etree.parse(str(XSD / "wrapper.xsd"), parser)
    power = etree.SubElement(
        wrapper.getroot(), "{http://www.w3.org/2001/XMLSchema}import"
    )
    power.set("namespace", NS["pwr"])
    power.set("schemaLocation", "http://www.garmin.com/xmlschemas/PowerExtensionv1.xsd")
    return etree.XMLSchema(wrapper)


SCHEMA = _schema()


def _valid(gpx: bytes | None) -> etree._Element:
    assert gpx is not None
    root = etree.fromstring(gpx)
    SCHEMA.assertValid(root)
    return root


def _points(root: etree._Element) -> list[etree._Element]:
    return list(root.iterfind("g:trk/g:trkseg/g:trkpt", NS))


def _tpx(point: etree._Element) -> list[tuple[str, str]]:
    children = point.iterfind("g:extensions/gpxtpx:TrackPointExtension/*", NS)
    return [(etree.QName(child).localname, child.text or "") for child in children]


def test_schema_checks_extension_values() -> None:
    gpx = build_gpx(RIDE, {"latlng": [[1.0, 2.0]], "heartrate": [90]})
    assert gpx is not None
    assert SCHEMA.validate(etree.fromstring(gpx))

    for bad in (
        b"<gpxtpx:hr>0</gpxtpx:hr>",
        b"<pwr:PowerInWatts>-1</pwr:PowerInWatts>",
    ):
        broken = gpx.replace(b"<gpxtpx:hr>90</gpxtpx:hr>", bad)
        assert not SCHEMA.validate(etree.fromstring(broken))


def test_recorded_activity_becomes_valid_gpx_with_every_point() -> None:
    activity, streams = tracks.activity(), tracks.streams(noise_m=1.5)

    root = _valid(build_gpx(activity, streams))

    points = _points(root)
    assert len(points) == len(streams["latlng"]) == 13_129
    assert root.findtext("g:metadata/g:name", namespaces=NS) == activity["name"]
    assert root.findtext("g:trk/g:type", namespaces=NS) == "Run"
    description = root.findtext("g:trk/g:desc", namespaces=NS) or ""
    assert description.startswith("Official time 3:42:02.")
    assert points[0].findtext("g:time", namespaces=NS) == "2018-11-04T14:53:46Z"
    finish = datetime(2018, 11, 4, 14, 53, 46) + timedelta(seconds=13_333)
    assert points[-1].findtext("g:time", namespaces=NS) == f"{finish.isoformat()}Z"
    assert _tpx(points[100]) == [("hr", "151"), ("cad", "88")]


def test_times_are_start_date_plus_offsets_in_utc() -> None:
    ride = dict(RIDE, start_date="2018-12-31T23:59:58Z")
    streams: Streams = {"latlng": [[1.0, 2.0]] * 4, "time": [0, 1, 2.5, 3661]}

    root = _valid(build_gpx(ride, streams))

    stamps = [p.findtext("g:time", namespaces=NS) for p in _points(root)]
    assert stamps == [
        "2018-12-31T23:59:58Z",
        "2018-12-31T23:59:59Z",
        "2019-01-01T00:00:00.500Z",
        "2019-01-01T01:00:59Z",
    ]
    assert root.findtext("g:metadata/g:time", namespaces=NS) == stamps[0]


def test_text_is_escaped_and_control_characters_dropped() -> None:
    ride = dict(RIDE, name="Morning ride 🚴 & <friends>\x07", description="a\x00\tb\nc")

    gpx = build_gpx(ride, {"latlng": [[1.0, 2.0]]})

    root = _valid(gpx)
    assert gpx is not None
    assert b"&amp; &lt;friends&gt;" in gpx
    assert b"\x07" not in gpx
    assert root.findtext("g:trk/g:name", namespaces=NS) == "Morning ride 🚴 & <friends>"
    assert root.findtext("g:trk/g:desc", namespaces=NS) == "a\tb\nc"


def test_activity_without_gps_gives_none() -> None:
    assert build_gpx(RIDE, {}) is None
    assert build_gpx(RIDE, {"time": [0, 1], "heartrate": [90, 91]}) is None
    assert build_gpx(RIDE, {"latlng": [None, [], [95.0, 0.0], "x"]}) is None
    assert not has_track({"latlng": []})
    assert has_track({"latlng": [None, [1, 2]]})


def test_holes_and_short_streams_are_skipped_per_value() -> None:
    streams: Streams = {
        "latlng": [[1.0, 2.0], None, [1.1, 2.1], [1.2, 2.2], [1.3, 2.3]],
        "time": [0, 1, None, 3],
        "altitude": [10.04, None, float("nan")],
        "heartrate": [None, 120, 0, 300, True],
        "cadence": [300, 90, -1],
        "watts": ["250", 200],
        "temp": [21.46],
    }

    root = _valid(build_gpx(RIDE, streams))

    points = _points(root)
    assert [p.get("lat") for p in points] == ["1", "1.1", "1.2", "1.3"]
    assert [p.findtext("g:ele", namespaces=NS) for p in points] == [
        "10.0",
        None,
        None,
        None,
    ]
    assert [p.find("g:time", NS) is not None for p in points] == [
        True,
        False,
        True,
        False,
    ]
    assert _tpx(points[0]) == [("atemp", "21.5"), ("cad", "254")]
    assert [_tpx(p) for p in points[1:]] == [[], [], []]
    assert points[0].find("g:extensions/pwr:PowerInWatts", NS) is None


def test_power_uses_garmin_power_extension_and_literal_prefixes() -> None:
    streams: Streams = {"latlng": [[1.0, 2.0]], "watts": [250], "heartrate": [140]}

    gpx = build_gpx(RIDE, streams)

    root = _valid(gpx)
    assert gpx is not None
    assert b"<gpxtpx:TrackPointExtension><gpxtpx:hr>140</gpxtpx:hr>" in gpx
    assert b"<power>" not in gpx
    power = root.find("g:trk/g:trkseg/g:trkpt/g:extensions/pwr:PowerInWatts", NS)
    assert power is not None
    assert power.text == "250"


def test_numbers_are_fixed_point_and_rounded() -> None:
    streams: Streams = {
        "latlng": [[40.123456789, -73.98], [1e-9, 179.99999999], [-90, -180]],
        "altitude": [1e-7, 12345.678, -3],
    }

    gpx = build_gpx(RIDE, streams)

    root = _valid(gpx)
    assert gpx is not None
    assert b"e-" not in gpx
    assert b"e+" not in gpx
    assert [(p.get("lat"), p.get("lon")) for p in _points(root)] == [
        ("40.1234568", "-73.98"),
        ("0", "-180"),
        ("-90", "-180"),
    ]
    elevations = [p.findtext("g:ele", namespaces=NS) for p in _points(root)]
    assert elevations == ["0.0", "12345.7", "-3.0"]


def test_metadata_is_optional_when_activity_is_sparse() -> None:
    root = _valid(build_gpx({}, {"latlng": [[1.0, 2.0]], "time": [0]}))

    assert root.find("g:metadata/g:time", NS) is None
    assert root.find("g:trk/g:trkseg/g:trkpt/g:time", NS) is None
    assert root.get("creator") == "directus-strava"


def test_unwrap_streams_reads_both_response_shapes() -> None:
    recorded = unwrap_streams(tracks.recorded_streams())
    listed = unwrap_streams(
        [
            {"type": "latlng", "data": [[1.0, 2.0]], "series_type": "distance"},
            {"type": "time", "data": [0]},
            {"data": [1]},
            "junk",
        ]
    )

    assert list(recorded) == ["distance"]
    assert len(recorded["distance"]) == 13_129
    assert {kind: list(data) for kind, data in listed.items()} == {
        "latlng": [[1.0, 2.0]],
        "time": [0],
    }


def test_unwrap_streams_packs_only_plain_numbers() -> None:
    streams = unwrap_streams(
        {
            "heartrate": {"data": [120, 121.5]},
            "moving": {"data": [True, False]},
            "gaps": {"data": [1, None]},
            "huge": {"data": [2**60]},
        }
    )

    assert isinstance(streams["heartrate"], array)
    assert list(streams["heartrate"]) == [120.0, 121.5]
    assert streams["moving"] == [True, False]
    assert streams["gaps"] == [1, None]
    assert streams["huge"] == [2**60]


def test_day_long_activity_fits_in_modest_memory() -> None:
    streams = tracks.day_long()

    tracemalloc.start()
    try:
        gpx = build_gpx(dict(RIDE, name="24 h 🚴"), streams)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert gpx is not None
    assert gpx.count(b"<trkpt ") == 86_400
    assert peak < 3 * len(gpx)


numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=2),
)
texts = st.one_of(
    st.text(),
    st.sampled_from(["\ud800", "\x00\x1f\x7f", "\ufffe", "]]>", "&amp;", "🚴\r\n"]),
    st.none(),
    st.integers(),
)
pairs = st.one_of(
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)).map(list),
    st.lists(numbers, max_size=3),
    st.none(),
)
stamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.text(max_size=4),
    st.none(),
)


def _usable(pair: Any) -> bool:
    if not isinstance(pair, list) or len(pair) != 2:
        return False
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in pair):
        return False
    try:
        lat, lon = float(pair[0]), float(pair[1])
    except OverflowError:
        return False
    return math.isfinite(lat + lon) and -90 <= lat <= 90 and -180 <= lon <= 180


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=texts,
    description=texts,
    start=stamps,
    latlng=st.lists(pairs, max_size=12),
    other=st.dictionaries(
        st.sampled_from(["time", "altitude", "heartrate", "cadence", "watts", "temp"]),
        st.lists(numbers, max_size=14),
    ),
)
def test_any_input_gives_schema_valid_gpx_or_none(
    name: Any, description: Any, start: Any, latlng: list[Any], other: dict[str, Any]
) -> None:
    activity = {"name": name, "description": description, "start_date": start}

    gpx = build_gpx(activity, {"latlng": latlng, **other})

    usable = sum(map(_usable, latlng))
    if not usable:
        assert gpx is None
        return
    root = _valid(gpx)
    assert len(_points(root)) == usable


def test_track_type_prefers_sport_type() -> None:
    hike = _valid(
        build_gpx({"sport_type": "Hike", "type": "Walk"}, {"latlng": [[1, 2]]})
    )
    walk = _valid(build_gpx({"type": "Walk"}, {"latlng": [[1, 2]]}))

    assert hike.findtext("g:trk/g:type", namespaces=NS) == "Hike"
    assert walk.findtext("g:trk/g:type", namespaces=NS) == "Walk"
