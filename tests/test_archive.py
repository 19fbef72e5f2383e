"""The bulk export reader, run on zips built from real export files."""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directus_strava import archive
from directus_strava.archive import (
    ArchiveActivity,
    count_activities,
    parse_activity_file,
    parse_export_date,
    read_archive,
)
from directus_strava.errors import ArchiveError

FIXTURES = Path(__file__).parent / "fixtures" / "archive"
FIT_GZ = (FIXTURES / "12866632127.fit.gz").read_bytes()
FIT = (FIXTURES / "berlin_0.9km.fit").read_bytes()
GPX = (FIXTURES / "berlin_0.9km.gpx").read_bytes()
TCX = (FIXTURES / "17611540601.tcx").read_bytes()

with (FIXTURES / "activities.csv").open(encoding="utf-8", newline="") as _file:
    EN_HEADER, EN_ROW = list(csv.reader(_file))

# The fixture has 94 columns. Older exports end after "Activity Count" with
# "Media" (86 columns); newer ones add columns before "Media" (103).
OLD_HEADER = [*EN_HEADER[:85], "Media"]
NEW_EXTRA = [
    "Recovery",
    "With Pet",
    "Competition",
    "Long Run",
    "For a Cause",
    "With Kid",
    "Downhill Distance",
    "Total Sets",
    "Total Reps",
]
NEW_HEADER = [*EN_HEADER[:93], *NEW_EXTRA, "Media"]

ID, DATE, NAME, TYPE, DESCRIPTION = 0, 1, 2, 3, 4
COMMUTE, PRIVATE_NOTE, GEAR, FILENAME = 9, 10, 11, 12


def row(**cells: str) -> list[str]:
    """The fixture's English row with some cells replaced by name."""
    values = list(EN_ROW)
    for name, value in cells.items():
        values[globals()[name.upper()]] = value
    return values


def csv_text(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)  # "\r\n", so fields holding a lone "\r" are quoted
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def build_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def export(
    tmp_path: Path,
    rows: Iterable[list[str]],
    files: dict[str, bytes] | None = None,
    header: list[str] = EN_HEADER,
) -> Path:
    members: dict[str, bytes | str] = {"activities.csv": csv_text(header, rows)}
    members.update(files or {})
    return build_zip(tmp_path / "export.zip", members)


def read_all(path: Path) -> list[ArchiveActivity]:
    return list(read_archive(path))


def test_fixture_export_reads_summary_and_fit_streams(tmp_path: Path) -> None:
    csv_bytes = (FIXTURES / "activities.csv").read_bytes()
    path = build_zip(
        tmp_path / "export.zip",
        {"activities.csv": csv_bytes, "activities/12866632127.fit.gz": FIT_GZ},
    )

    [activity] = read_all(path)

    summary = activity.summary
    assert summary["id"] == 12070555079
    assert summary["name"] == "Laufen Landal Park"
    assert summary["sport_type"] == summary["type"] == "Run"
    assert summary["start_date"] == "2022-05-29T15:53:35Z"
    assert summary["distance"] == pytest.approx(3322.95, abs=0.01)
    assert summary["elapsed_time"] == 1428
    assert summary["moving_time"] == 1411
    assert summary["total_elevation_gain"] == pytest.approx(61.88, abs=0.01)
    assert summary["calories"] == 262.0
    assert summary["commute"] is False
    assert summary["manual"] is False
    assert "average_heartrate" not in summary
    assert "description" not in summary
    assert activity.original_name == "activities/12866632127.fit.gz"
    assert activity.original_bytes == FIT_GZ
    assert activity.problem is None
    assert len(activity.streams["time"]) == 326
    assert activity.streams["time"][:2] == [0, 7]
    assert len(activity.streams["latlng"]) == 326
    assert activity.streams["latlng"][0] == pytest.approx([49.804717, 6.889322])
    assert summary["start_latlng"] == activity.streams["latlng"][0]
    assert "heartrate" not in activity.streams


def test_german_export_maps_columns_dates_and_types(tmp_path: Path) -> None:
    csv_bytes = (FIXTURES / "activities_de.csv").read_bytes()
    path = build_zip(
        tmp_path / "export.zip",
        {"activities.csv": csv_bytes, "activities/12866632127.fit.gz": FIT_GZ},
    )

    [activity] = read_all(path)

    assert activity.summary["id"] == 12070555079
    assert activity.summary["start_date"] == "2022-05-29T15:53:35Z"
    assert activity.summary["sport_type"] == "Run"
    assert activity.summary["distance"] == pytest.approx(3322.95, abs=0.01)
    assert activity.summary["elapsed_time"] == 1428
    assert activity.summary["moving_time"] == 1411
    assert len(activity.streams["latlng"]) == 326
    assert count_activities(path) == 1


@pytest.mark.parametrize("header", [OLD_HEADER, EN_HEADER, NEW_HEADER])
def test_older_and_newer_column_sets_read_alike(
    tmp_path: Path, header: list[str]
) -> None:
    cells = [*row(filename="")[:85], *[""] * (len(header) - 85)]
    path = export(tmp_path, [cells], header=header)

    [activity] = read_all(path)

    assert len(header) in (86, 94, 103)
    assert activity.summary["distance"] == pytest.approx(3322.95, abs=0.01)
    assert activity.summary["max_speed"] == pytest.approx(3.215, abs=0.001)
    assert activity.summary["calories"] == 262.0
    assert activity.summary["manual"] is True


def test_display_and_raw_copies_are_told_apart_by_position(tmp_path: Path) -> None:
    cells = row(filename="")
    cells[EN_HEADER.index("Max Heart Rate")] = "999"  # display copy
    cells[EN_HEADER.index("Max Heart Rate", 13)] = "171.0"  # raw copy
    cells[COMMUTE] = "true"

    [activity] = read_all(export(tmp_path, [cells]))

    assert activity.summary["max_heartrate"] == 171.0
    assert activity.summary["distance"] == pytest.approx(3322.95, abs=0.01)
    assert activity.summary["commute"] is True


@pytest.mark.parametrize(
    ("name", "data", "points", "streams"),
    [
        ("a.gpx", GPX, 49, {"latlng", "altitude"}),
        ("b.gpx.gz", gzip.compress(GPX), 49, {"latlng", "altitude"}),
        ("c.tcx", TCX, 200, {"time", "latlng", "altitude", "distance", "heartrate"}),
        ("d.tcx.gz", gzip.compress(TCX), 200, {"time", "latlng", "altitude"}),
        ("e.fit", FIT, 49, {"time", "latlng", "altitude", "distance"}),
        ("f.fit.gz", FIT_GZ, 326, {"time", "latlng", "altitude", "cadence"}),
        ("g.gpx", b"  \n\t " + GPX, 49, {"latlng", "altitude"}),
        ("h.tcx.gz", gzip.compress(b"\n   " + TCX), 200, {"heartrate"}),
    ],
)
def test_original_files_become_streams(
    tmp_path: Path, name: str, data: bytes, points: int, streams: set[str]
) -> None:
    path = export(
        tmp_path, [row(filename=f"activities/{name}")], {f"activities/{name}": data}
    )

    [activity] = read_all(path)

    assert activity.problem is None
    assert activity.original_bytes == data
    assert streams <= set(activity.streams)
    assert all(len(values) == points for values in activity.streams.values())


def test_tcx_streams_are_shaped_like_strava_streams() -> None:
    parsed = parse_activity_file("activities/1.tcx", b"   " + TCX)

    assert parsed.problem is None
    assert parsed.start == datetime(2022, 12, 5, 0, 14, 28, tzinfo=UTC)
    assert parsed.streams["time"][:2] == [0, 5]
    assert parsed.streams["time"][-1] == 978
    assert parsed.streams["heartrate"][0] == 110
    assert isinstance(parsed.streams["heartrate"][0], int)
    assert parsed.streams["latlng"][0] == pytest.approx([40.7558216, -73.9839482])


def test_gpx_extensions_give_heartrate_cadence_power_and_temperature() -> None:
    gpx = b"""<?xml version="1.0"?>
<gpx xmlns="http://www.topografix.com/GPX/1/1"
 xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2"
 xmlns:pwr="http://www.garmin.com/xmlschemas/PowerExtension/v1">
 <trk><trkseg>
  <trkpt lat="1.5" lon="2.5"><ele>10</ele><time>2024-01-01T10:00:00Z</time>
   <extensions><power>210</power><gpxtpx:TrackPointExtension>
    <gpxtpx:atemp>21</gpxtpx:atemp><gpxtpx:hr>140</gpxtpx:hr>
    <gpxtpx:cad>88</gpxtpx:cad></gpxtpx:TrackPointExtension></extensions></trkpt>
  <trkpt lat="1.6" lon="2.6"><time>2024-01-01T10:00:03Z</time>
   <extensions><pwr:PowerInWatts>230</pwr:PowerInWatts></extensions></trkpt>
 </trkseg></trk></gpx>"""

    parsed = parse_activity_file("x.gpx", gpx)

    assert parsed.streams == {
        "time": [0, 3],
        "latlng": [[1.5, 2.5], [1.6, 2.6]],
        "altitude": [10.0, None],
        "heartrate": [140, None],
        "cadence": [88, None],
        "watts": [210, 230],
        "temp": [21, None],
    }
    assert parsed.start == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_start_date_comes_from_the_file_when_the_csv_has_none(tmp_path: Path) -> None:
    cells = row(date="", filename="activities/t.tcx")

    [activity] = read_all(export(tmp_path, [cells], {"activities/t.tcx": TCX}))

    assert activity.summary["start_date"] == "2022-12-05T00:14:28Z"


def test_damaged_files_are_reported_and_the_rest_continues(tmp_path: Path) -> None:
    truncated_fit = gzip.compress(gzip.decompress(FIT_GZ)[:4000])
    rows = [
        row(id="1", filename="activities/good.gpx"),
        row(id="2", filename="activities/broken.gpx.gz"),
        row(id="3", filename="activities/cut.fit.gz"),
        row(id="4", filename="activities/junk.tcx"),
        row(id="5", filename="activities/gone.fit"),
        row(id="6", filename="activities/good.tcx"),
    ]
    files = {
        "activities/good.gpx": GPX,
        "activities/broken.gpx.gz": FIT_GZ[: len(FIT_GZ) // 2],
        "activities/cut.fit.gz": truncated_fit,
        "activities/junk.tcx": b"<TrainingCenterDatabase><Trackpoint>",
        "activities/good.tcx": TCX,
    }

    activities = read_all(export(tmp_path, rows, files))

    problems = {a.summary["id"]: a.problem for a in activities}
    assert [a.summary["id"] for a in activities] == [1, 2, 3, 4, 5, 6]
    assert problems[1] is None
    assert problems[6] is None
    assert "activities/broken.gpx.gz" in str(problems[2])
    assert "activities/cut.fit.gz is damaged" in str(problems[3])
    assert "activities/junk.tcx" in str(problems[4])
    assert problems[5] == "activities/gone.fit is missing from the archive."
    cut = activities[2]
    assert 0 < len(cut.streams["latlng"]) < 326
    assert cut.original_bytes == truncated_fit
    assert cut.summary["name"] == "Laufen Landal Park"


def test_manual_and_error_activities_have_no_file(tmp_path: Path) -> None:
    rows = [row(id="1", filename=""), row(id="2", filename="#error#")]

    manual, failed = read_all(export(tmp_path, rows))

    assert manual.summary["manual"] is True
    assert manual.streams == {}
    assert manual.original_name is None
    assert manual.original_bytes is None
    assert manual.problem is None
    assert failed.summary["manual"] is False
    assert "#error#" in str(failed.problem)


def test_descriptions_with_newlines_and_private_notes_survive(tmp_path: Path) -> None:
    description = 'Hills, then "intervals"\n\nLegs: gone.\r\nCoffee ☕'
    note = "Knee hurt at km 3,\nask the physio"
    cells = row(filename="", description=description, private_note=note)
    cells[GEAR] = "Old Shoes"

    path = export(tmp_path, [cells, row(id="2", filename="")])
    first, second = read_all(path)

    assert first.summary["description"] == description
    assert first.summary["private_note"] == note
    assert first.summary["gear"] == {"name": "Old Shoes"}
    assert second.summary["id"] == 2
    assert count_activities(path) == 2


def test_empty_fields_never_crash(tmp_path: Path) -> None:
    cells = [""] * len(EN_HEADER)
    cells[ID] = "42"

    full, short = read_all(export(tmp_path, [cells, ["", "x"], ["7"]]))

    assert full.summary == {"id": 42, "manual": True}
    assert short.summary == {"id": 7, "manual": True}


def test_not_a_zip_fails_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(b"this is not a zip")

    with pytest.raises(ArchiveError, match=r"is not a zip file: .*without unpacking"):
        read_archive(path)


def test_missing_archive_fails(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="does not exist"):
        count_activities(tmp_path / "nope.zip")


def test_archive_without_activities_csv_fails(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "x.zip", {"activities/1.gpx": GPX})

    with pytest.raises(ArchiveError, match=r"has no activities\.csv"):
        read_archive(path)


def test_foreign_csv_fails(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "x.zip", {"activities.csv": "Date,Steps\n1,2\n"})

    with pytest.raises(ArchiveError, match="no 'Activity ID' column"):
        read_archive(path)


def test_nested_export_folder_is_found(tmp_path: Path) -> None:
    members: dict[str, bytes | str] = {
        "export_1/activities.csv": csv_text(
            EN_HEADER, [row(filename="activities/a.gpx")]
        ),
        "export_1/activities/a.gpx": GPX,
    }

    [activity] = read_all(build_zip(tmp_path / "x.zip", members))

    assert activity.original_name == "export_1/activities/a.gpx"
    assert len(activity.streams["latlng"]) == 49


def test_zip_bomb_member_is_refused_and_the_rest_continues(tmp_path: Path) -> None:
    bomb = b"<gpx>" + b" " * (8 * 1024 * 1024)
    rows = [row(id="1", filename="activities/bomb.gpx"), row(id="2", filename="")]

    bombed, fine = read_all(export(tmp_path, rows, {"activities/bomb.gpx": bomb}))

    assert "zip bomb" in str(bombed.problem)
    assert bombed.original_bytes is None
    assert fine.problem is None


def test_gzip_bomb_inside_a_member_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1024 * 1024)
    payload = gzip.compress(b"<gpx>" + b" " * (2 * 1024 * 1024))
    rows = [row(filename="activities/bomb.gpx.gz")]

    [activity] = read_all(export(tmp_path, rows, {"activities/bomb.gpx.gz": payload}))

    assert "more than 1048576 bytes" in str(activity.problem)


def test_csv_bomb_fails_before_reading(tmp_path: Path) -> None:
    header = ",".join(EN_HEADER) + "\n"
    path = build_zip(tmp_path / "x.zip", {"activities.csv": header + "," * 3_000_000})

    with pytest.raises(ArchiveError, match="zip bomb"):
        read_archive(path)


@pytest.mark.parametrize(
    "reference",
    [
        "../outside.gpx",
        "activities/../../outside.gpx",
        "/etc/passwd",
        "activities/..\\..\\outside.gpx",
        "media/1.jpg",
    ],
)
def test_file_names_escaping_activities_are_ignored(
    tmp_path: Path, reference: str
) -> None:
    files = {"../outside.gpx": GPX, "media/1.jpg": b"jpeg"}
    path = export(tmp_path, [row(filename=reference)], files)
    before = sorted(tmp_path.parent.rglob("*"))

    [activity] = read_all(path)

    assert "points outside the archive's activities/ folder" in str(activity.problem)
    assert activity.original_bytes is None
    assert sorted(tmp_path.parent.rglob("*")) == before


def test_dates_in_english_and_german_formats() -> None:
    expected = datetime(2018, 11, 13, 15, 39, 39, tzinfo=UTC)

    assert parse_export_date("Nov 13, 2018, 3:39:39 PM") == expected
    assert parse_export_date("Nov 13, 2018, 3:39:39\u202fPM") == expected
    assert parse_export_date("13.11.2018, 15:39:39") == expected
    assert parse_export_date("2018-11-13T15:39:39Z") == expected
    assert parse_export_date("Nov 13, 2018, 12:05:00 AM") == expected.replace(
        hour=0, minute=5, second=0
    )
    assert parse_export_date("yesterday") is None
    assert parse_export_date("31.02.2018, 10:00:00") is None


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)))
def test_export_dates_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    hour12 = moment.hour % 12 or 12
    ampm = "AM" if moment.hour < 12 else "PM"
    english = f"{moment:%b} {moment.day}, {moment.year}, {hour12}:{moment:%M:%S} {ampm}"
    german = f"{moment:%d.%m.%Y, %H:%M:%S}"

    assert parse_export_date(english) == moment
    assert parse_export_date(german) == moment


_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=80,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=_TEXT, description=_TEXT, note=_TEXT)
def test_free_text_round_trips_through_the_csv(
    tmp_path: Path, name: str, description: str, note: str
) -> None:
    cells = row(filename="", name=name, description=description, private_note=note)

    activity, after = read_all(export(tmp_path, [cells, row(id="9", filename="")]))

    assert after.summary["id"] == 9
    assert activity.summary.get("name") == (name.strip() or None)
    assert activity.summary.get("description") == (description.strip() or None)
    assert activity.summary.get("private_note") == (note.strip() or None)


def test_thousand_activities_stream_in_bounded_memory(tmp_path: Path) -> None:
    packed = gzip.compress(GPX)
    rows = [row(id=str(n), filename=f"activities/{n}.gpx.gz") for n in range(1000)]
    files = {f"activities/{n}.gpx.gz": packed for n in range(1000)}
    path = export(tmp_path, rows, files)
    assert count_activities(path) == 1000

    tracemalloc.start()
    try:
        seen = points = 0
        for activity in read_archive(path):
            seen += 1
            points += len(activity.streams["latlng"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Holding every activity would take tens of megabytes (49,000 points,
    # 1,000 summaries and files); one at a time stays well under two.
    assert seen == 1000
    assert points == 49_000
    assert peak < 2 * 1024 * 1024


def test_csv_that_is_not_utf8_fails_with_the_line(tmp_path: Path) -> None:
    text = csv_text(EN_HEADER, [row(filename="", name="Kältelauf")])
    path = build_zip(tmp_path / "x.zip", {"activities.csv": text.encode("latin-1")})

    with pytest.raises(ArchiveError, match="cannot be read near line"):
        read_all(path)
