"""Read a Strava bulk export zip as a stream of API-shaped activities.

The zip is never unpacked: `activities.csv` is read row by row straight out of
the archive, and each row's original file (FIT, GPX or TCX, gzipped or not)
is read from its member when that row comes up. Only one activity and its
file are held at a time, so memory stays flat however large the archive.

Each row becomes a summary with the keys Strava's API uses (`id`,
`start_date`, `distance` in metres, ...) and each file becomes streams shaped
like the API's `key_by_type` streams (`time`, `latlng`, `altitude`, ...), so
the importer treats archive and API activities alike.

The export's headers follow the account's language and its columns have
grown over the years (87 to 101 and more). Columns are found by their English
or German name; names that appear twice (Elapsed Time, Distance, Max Heart
Rate, Relative Effort, Commute) are told apart by position: the copies up to
the Filename column hold display values in the athlete's units, the later
ones raw values in metres and seconds.

Shortcoming: only English and German headers are known. An export in another
language is refused with a message saying so, because guessing columns by
position alone would risk importing wrong values silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

import fitdecode

from directus_strava.errors import ArchiveError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

logger = logging.getLogger(__name__)

MAX_MEMBER_BYTES = 512 * 1024 * 1024
"""Largest unpacked size accepted for any one file, zip member or gzip."""

MAX_RATIO = 200
"""Largest unpacked/packed ratio accepted for members above `_RATIO_FLOOR`."""

MAX_POINTS = 1_000_000
"""Most track points read from one file (about 11 days at one per second)."""

_RATIO_FLOOR = 1024 * 1024
_CHUNK = 64 * 1024
_CSV_NAME = "activities.csv"
_NO_FILE = ("", "#error#")
# Leading bytes some archived XML files carry before `<?xml`: whitespace and
# the UTF-8 byte order mark. No XML document starts with any of them.
_XML_LEAD = b" \t\r\n\xef\xbb\xbf"
_SEMICIRCLE = 180 / 2**31

_HEADERS: dict[str, dict[str, str]] = {
    "en": {
        "Activity ID": "id",
        "Activity Date": "date",
        "Activity Name": "name",
        "Activity Type": "type",
        "Activity Description": "description",
        "Elapsed Time": "elapsed_time",
        "Distance": "distance",
        "Max Heart Rate": "max_heartrate",
        "Relative Effort": "suffer_score",
        "Commute": "commute",
        "Activity Private Note": "private_note",
        "Activity Gear": "gear",
        "Filename": "filename",
        "Moving Time": "moving_time",
        "Max Speed": "max_speed",
        "Average Speed": "average_speed",
        "Elevation Gain": "total_elevation_gain",
        "Elevation Low": "elev_low",
        "Elevation High": "elev_high",
        "Average Cadence": "average_cadence",
        "Average Heart Rate": "average_heartrate",
        "Max Watts": "max_watts",
        "Average Watts": "average_watts",
        "Weighted Average Power": "weighted_average_watts",
        "Calories": "calories",
        "Average Temperature": "average_temp",
        "Perceived Exertion": "perceived_exertion",
        "Flagged": "flagged",
        "Bike": "bike",
        "Gear": "other_gear",
    },
    "de": {
        "Aktivitäts-ID": "id",
        "Aktivitätsdatum": "date",
        "Name der Aktivität": "name",
        "Aktivitätsart": "type",
        "Aktivitätsbeschreibung": "description",
        "Verstrichene Zeit": "elapsed_time",
        "Distanz": "distance",
        "Max. Herzfrequenz": "max_heartrate",
        "Relative Leistung": "suffer_score",
        "Pendeln": "commute",
        # Strava's German label for the private note reads "privacy note".
        "Hinweis zur Privatsphäre für Aktivitäten": "private_note",
        "Private Notiz zur Aktivität": "private_note",
        "Aktivitätsausrüstung": "gear",
        "Dateiname": "filename",
        "Bewegungszeit": "moving_time",
        "Höchstgeschw.": "max_speed",
        "Durchschnittliche Geschwindigkeit": "average_speed",
        "Höhenzunahme": "total_elevation_gain",
        "Min. Höhe": "elev_low",
        "Max. Höhe": "elev_high",
        "Durchschnittliche Trittfrequenz": "average_cadence",
        "Durchschnittliche Herzfrequenz": "average_heartrate",
        "Max. Watt": "max_watts",
        "Durchschnittliche Watt": "average_watts",
        "Gewichtete durchschnittliche Leistung": "weighted_average_watts",
        "Kalorien": "calories",
        "Durchschnittliche Temperatur": "average_temp",
        "Gefühlte Anstrengung": "perceived_exertion",
        "Markiert": "flagged",
        "Fahrrad": "bike",
        "Ausrüstung": "other_gear",
    },
}

# Summary keys read as numbers: raw column first, display column as fallback.
# Distance is absent here on purpose: its display copy is in the athlete's
# unit (km or miles), which the export does not name.
_FLOATS = (
    "max_speed",
    "average_speed",
    "total_elevation_gain",
    "elev_low",
    "elev_high",
    "average_cadence",
    "average_heartrate",
    "max_heartrate",
    "max_watts",
    "average_watts",
    "weighted_average_watts",
    "calories",
    "average_temp",
    "suffer_score",
    "perceived_exertion",
)
_INTS = ("elapsed_time", "moving_time")

# Activity types as the export writes them, where removing the spaces from
# the English label does not give the API's sport_type.
_SPORT_TYPES = {
    "Rock Climb": "RockClimbing",
    "HIIT": "HighIntensityIntervalTraining",
    "Lauf": "Run",
    "Radfahrt": "Ride",
}

_MONTHS = {
    "Jan": 1,
    "Feb": 2,
    "Mar": 3,
    "Apr": 4,
    "May": 5,
    "Jun": 6,
    "Jul": 7,
    "Aug": 8,
    "Sep": 9,
    "Oct": 10,
    "Nov": 11,
    "Dec": 12,
}
_EN_DATE = re.compile(
    r"(?P<mon>[A-Z][a-z]{2})\w*\.? (?P<day>\d{1,2}), (?P<year>\d{4}),?\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})\s*(?P<ampm>[AaPp][Mm])?"
)
_DE_DATE = re.compile(
    r"(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4}),?\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})"
)

_STREAM_KEYS = (
    "time",
    "latlng",
    "distance",
    "altitude",
    "heartrate",
    "cadence",
    "watts",
    "temp",
)
# Streams the API gives as whole numbers.
_WHOLE = frozenset(("heartrate", "cadence", "watts", "temp"))
# Local XML names (namespace dropped) that carry each stream in GPX 1.0/1.1
# (with Garmin's TrackPointExtension v1/v2 and power extensions) and TCX.
_XML_FIELDS = {
    "time": ("time", "Time"),
    "altitude": ("ele", "AltitudeMeters"),
    "distance": ("DistanceMeters",),
    "heartrate": ("hr", "Value"),
    "cadence": ("cad", "Cadence", "RunCadence"),
    "watts": ("power", "PowerInWatts", "Watts"),
    "temp": ("atemp",),
}
_CSV_ERRORS = (
    csv.Error,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
)
_FILE_ERRORS = (
    ArchiveError,
    fitdecode.FitError,
    ParseError,
    gzip.BadGzipFile,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass
class ArchiveActivity:
    """One activity of a bulk export: its summary, original file and streams.

    `original_bytes` are the member's bytes as Strava stored them in the zip,
    still gzipped when the name ends in `.gz`, so the file kept in Directus is
    the one the athlete uploaded. `problem` is a sentence for the person
    importing when the file was missing or damaged; the summary is complete
    either way, and streams hold whatever was read before the damage.
    """

    summary: dict[str, Any]
    original_name: str | None = None
    original_bytes: bytes | None = None
    streams: dict[str, list[Any]] = field(default_factory=dict)
    problem: str | None = None


def read_archive(path: Path) -> Iterator[ArchiveActivity]:
    """Yield the activities of the Strava export zip at `path`, one at a time.

    The archive and its header are checked before this returns, so a wrong
    file raises ArchiveError at the call; damaged activity files do not raise
    but come out with `problem` set.
    """
    archive = _open(path)
    try:
        rows = _csv_rows(archive, path)
        columns = _Columns.from_header(next(rows, None), path)
    except BaseException:
        archive.zip.close()
        raise
    return _activities(archive, rows, columns)


def count_activities(path: Path) -> int:
    """Count the activities `read_archive` would yield, reading only the CSV."""
    archive = _open(path)
    with archive.zip:
        rows = _csv_rows(archive, path)
        columns = _Columns.from_header(next(rows, None), path)
        return sum(
            1 for row in rows if _activity_id(columns.text(row, "id")) is not None
        )


@dataclass
class _Archive:
    zip: zipfile.ZipFile
    csv_name: str
    base: str


def _open(path: Path) -> _Archive:
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise ArchiveError(f"{path} does not exist: check the path.") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(
            f"{path} is not a zip file: {exc}. Pass the .zip Strava sent for "
            "'Download your account' as it is, without unpacking it."
        ) from exc
    csv_name = _find_csv(archive.namelist())
    if csv_name is None:
        archive.close()
        raise ArchiveError(
            f"{path} has no {_CSV_NAME}: it is not a Strava bulk export. Request "
            "one under Settings > My Account > Download or Delete Your Account."
        )
    return _Archive(archive, csv_name, posixpath.dirname(csv_name))


def _find_csv(names: Iterable[str]) -> str | None:
    # Strava puts it at the root; a re-zipped export may nest it one folder down.
    found = [n for n in names if posixpath.basename(n) == _CSV_NAME]
    found = [n for n in found if n.count("/") <= 1 and not n.startswith("/")]
    return min(found, key=lambda n: n.count("/"), default=None)


def _csv_rows(archive: _Archive, path: Path) -> Iterator[list[str]]:
    info = archive.zip.getinfo(archive.csv_name)
    _check_member(info)
    reader = None
    try:
        raw = _CappedReader(archive.zip.open(info), MAX_MEMBER_BYTES, info.filename)
        text = io.TextIOWrapper(
            io.BufferedReader(raw), encoding="utf-8-sig", newline=""
        )
        reader = csv.reader(text)
        yield from reader
    except _CSV_ERRORS as exc:
        line = reader.line_num if reader is not None else 0
        raise ArchiveError(
            f"{_CSV_NAME} in {path} cannot be read near line {line}: {exc}. "
            "Download the export again; the file looks damaged."
        ) from exc


@dataclass
class _Columns:
    """Where each summary field sits in this export's rows."""

    language: str
    display: dict[str, int]
    raw: dict[str, int]

    @classmethod
    def from_header(cls, header: list[str] | None, path: Path) -> _Columns:
        header = [name.strip() for name in header or []]
        for language, names in _HEADERS.items():
            if any(names.get(name) == "id" for name in header):
                return cls._locate(language, names, header)
        raise ArchiveError(
            f"{_CSV_NAME} in {path} has no 'Activity ID' column in English or "
            "German: it is not a Strava activities list this reader knows. "
            "Set Strava's language to English or German and request the export "
            "again."
        )

    @classmethod
    def _locate(
        cls, language: str, names: dict[str, str], header: list[str]
    ) -> _Columns:
        keys = [names.get(name) for name in header]
        last_display = keys.index("filename") if "filename" in keys else len(keys)
        columns = cls(language, {}, {})
        for index, key in enumerate(keys):
            place = columns.display if index <= last_display else columns.raw
            if key is not None:
                place.setdefault(key, index)
        return columns

    def text(self, row: list[str], key: str, *, raw: bool = False) -> str:
        index = (self.raw if raw else self.display).get(key)
        if index is None or index >= len(row):
            return ""
        return row[index].strip()

    def best(self, row: list[str], key: str) -> str:
        """The raw value when there is one, else the display value."""
        return self.text(row, key, raw=True) or self.text(row, key)


def _activities(
    archive: _Archive, rows: Iterator[list[str]], columns: _Columns
) -> Iterator[ArchiveActivity]:
    counts = {"activities": 0, "problems": 0}
    with archive.zip:
        for row in rows:
            activity = _activity(archive, row, columns)
            if activity is None:
                continue
            counts["activities"] += 1
            counts["problems"] += activity.problem is not None
            yield activity
    logger.info(
        "archive_read file=%s activities=%d problems=%d",
        archive.zip.filename,
        counts["activities"],
        counts["problems"],
    )


def _activity(
    archive: _Archive, row: list[str], columns: _Columns
) -> ArchiveActivity | None:
    summary = _summary(row, columns)
    if summary is None:
        logger.warning("archive_row_skipped reason=no_activity_id cells=%d", len(row))
        return None

    activity = _attach_original(archive, columns.text(row, "filename"), summary)
    _complete_from_streams(summary, activity.streams)

    if activity.problem:
        logger.warning(
            "archive_file_problem activity_id=%s file=%s problem=%r",
            summary["id"],
            activity.original_name,
            activity.problem,
        )
    logger.debug("archive_activity activity_id=%s", summary["id"])
    return activity


def _summary(row: list[str], columns: _Columns) -> dict[str, Any] | None:
    activity_id = _activity_id(columns.text(row, "id"))
    if activity_id is None:
        return None
    number = _number_parser(columns.language)
    summary: dict[str, Any] = {"id": activity_id}

    summary.update(_texts(row, columns))
    summary["start_date"] = _start_date(columns.text(row, "date"))
    summary["distance"] = number(columns.text(row, "distance", raw=True))
    for key in _FLOATS:
        summary[key] = number(columns.best(row, key))
    for key in _INTS:
        summary[key] = _integer(number(columns.best(row, key)))
    summary.update(_flags(row, columns, number))

    return {key: value for key, value in summary.items() if value is not None}


def _texts(row: list[str], columns: _Columns) -> dict[str, Any]:
    kind = columns.text(row, "type")
    gear = columns.text(row, "gear") or columns.best(row, "bike")
    gear = gear or columns.best(row, "other_gear")
    return {
        "name": columns.text(row, "name") or None,
        "type": _sport_type(kind),
        "sport_type": _sport_type(kind),
        "description": columns.text(row, "description") or None,
        "private_note": columns.text(row, "private_note") or None,
        "gear": {"name": gear} if gear else None,
        "manual": columns.text(row, "filename") == "",
    }


def _flags(
    row: list[str], columns: _Columns, number: Callable[[str], float | None]
) -> dict[str, bool | None]:
    commute = columns.text(row, "commute").lower()
    flagged = number(columns.best(row, "flagged"))
    if commute not in ("true", "false"):
        raw = number(columns.text(row, "commute", raw=True))
        commute = "" if raw is None else str(raw != 0).lower()
    return {
        "commute": None if not commute else commute == "true",
        "flagged": None if flagged is None else flagged != 0,
    }


def _activity_id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _sport_type(label: str) -> str | None:
    if not label:
        return None
    if label in _SPORT_TYPES:
        return _SPORT_TYPES[label]
    # English labels are the API names spelt with spaces ("Weight Training",
    # "E-Bike Ride"); other languages' labels pass through unchanged.
    return re.sub(r"[\s-]", "", label) if label.isascii() else label


def _number_parser(language: str) -> Callable[[str], float | None]:
    def number(text: str) -> float | None:
        try:
            return float(text) if text else None
        except ValueError:
            pass
        # Display values use the locale's separators: "1,234.5" or "1.234,5".
        if language == "de":
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
        try:
            return float(text)
        except ValueError:
            return None

    return number


def _integer(value: float | None) -> int | None:
    return None if value is None else round(value)


def _start_date(text: str) -> str | None:
    moment = parse_export_date(text)
    return None if moment is None else _iso(moment)


def parse_export_date(text: str) -> datetime | None:
    """Read an export's date ("May 29, 2022, 3:53:35 PM", "29.05.2022, 15:53:35")."""
    text = text.strip()
    if not text:
        return None
    for parse in (_english_date, _german_date, _iso_date):
        moment = parse(text)
        if moment is not None:
            return moment
    return None


def _english_date(text: str) -> datetime | None:
    match = _EN_DATE.fullmatch(text)
    if match is None or match["mon"] not in _MONTHS:
        return None
    hour = int(match["hour"])
    if match["ampm"]:
        hour = hour % 12 + (12 if match["ampm"].lower() == "pm" else 0)
    month = _MONTHS[match["mon"]]
    return _utc(match["year"], month, match["day"], hour, match)


def _german_date(text: str) -> datetime | None:
    match = _DE_DATE.fullmatch(text)
    if match is None:
        return None
    return _utc(match["year"], match["month"], match["day"], match["hour"], match)


def _utc(
    year: str, month: str | int, day: str, hour: str | int, match: re.Match[str]
) -> datetime | None:
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _iso_date(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attach_original(
    archive: _Archive, reference: str, summary: dict[str, Any]
) -> ArchiveActivity:
    activity = ArchiveActivity(summary)
    if reference in _NO_FILE:
        if reference == "#error#":
            activity.problem = (
                "Strava's export has no original file for this activity "
                "(the archive lists it as #error#)."
            )
        return activity

    member = _member_name(archive.base, reference)
    if member is None:
        activity.problem = (
            f"Its file name {reference!r} points outside the archive's "
            "activities/ folder and was ignored."
        )
        return activity

    activity.original_name = member
    activity.original_bytes, parsed = _read_original(archive.zip, member)
    activity.streams, activity.problem = parsed.streams, parsed.problem
    if parsed.start is not None:
        summary.setdefault("start_date", _iso(parsed.start))
    return activity


def _member_name(base: str, reference: str) -> str | None:
    if "\\" in reference or reference.startswith("/") or "\x00" in reference:
        return None
    clean = posixpath.normpath(reference)
    if clean != reference or not clean.startswith("activities/"):
        return None
    return posixpath.join(base, clean) if base else clean


def _read_original(
    archive: zipfile.ZipFile, name: str
) -> tuple[bytes | None, ParsedFile]:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None, ParsedFile(problem=f"{name} is missing from the archive.")
    try:
        data = _read_member(archive, info)
    except _FILE_ERRORS as exc:
        problem = f"{name} could not be taken from the archive: {exc}"
        return None, ParsedFile(problem=problem.rstrip(".") + ".")
    return data, parse_activity_file(name, data)


def _check_member(info: zipfile.ZipInfo) -> None:
    if info.file_size > MAX_MEMBER_BYTES:
        raise ArchiveError(
            f"{info.filename} unpacks to {info.file_size} bytes, more than the "
            f"{MAX_MEMBER_BYTES} allowed; it was not read."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR and ratio > MAX_RATIO:
        raise ArchiveError(
            f"{info.filename} unpacks {ratio:.0f} times larger than it is "
            "stored, which only a zip bomb does; it was not read."
        )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    _check_member(info)
    with _CappedReader(archive.open(info), MAX_MEMBER_BYTES, info.filename) as member:
        return b"".join(iter(lambda: member.read(_CHUNK), b""))


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _CappedReader(io.RawIOBase):
    """A readable stream that fails once more than `limit` bytes came out.

    Declared sizes in zip and gzip headers can lie; counting what is actually
    produced is what keeps a bomb from filling memory.
    """

    def __init__(self, source: _Readable, limit: int, name: str) -> None:
        self._source = source
        self._limit = limit
        self._name = name
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        self._count += len(data)
        if self._count > self._limit:
            raise ArchiveError(
                f"{self._name} unpacks to more than {self._limit} bytes; it was "
                "not read."
            )
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


@dataclass
class ParsedFile:
    """An original file read into streams, with its first timestamp."""

    streams: dict[str, list[Any]] = field(default_factory=dict)
    start: datetime | None = None
    problem: str | None = None


def parse_activity_file(name: str, data: bytes) -> ParsedFile:
    """Read an original FIT, GPX or TCX file (or its .gz) into API-shaped streams.

    The format comes from the name. On damage the points read before it are
    kept and `problem` says what went wrong.
    """
    kind, packed = _file_kind(name)
    if kind is None:
        return ParsedFile(problem=f"{name} is not a FIT, GPX or TCX file.")
    track = _Track()
    try:
        with _unpacked(name, data, packed) as source:
            (_read_fit if kind == "fit" else _read_xml)(source, track)
    except _FILE_ERRORS as exc:
        problem: str | None = _damage(name, exc, track.size)
    else:
        problem = None
    return ParsedFile(track.streams(), track.start(), problem)


def _file_kind(name: str) -> tuple[str | None, bool]:
    lower = name.lower()
    packed = lower.endswith(".gz")
    stem = lower.removesuffix(".gz")
    kind = next((k for k in ("fit", "gpx", "tcx") if stem.endswith("." + k)), None)
    return kind, packed


def _unpacked(name: str, data: bytes, packed: bool) -> io.BufferedReader:
    source: _Readable = io.BytesIO(data)
    if packed:
        source = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    return io.BufferedReader(_CappedReader(source, MAX_MEMBER_BYTES, name))


def _damage(name: str, exc: BaseException, kept: int) -> str:
    reason = str(exc).strip() or type(exc).__name__
    if kept:
        return (
            f"{name} is damaged ({reason}); the {kept} track points before the "
            "damage were kept."
        )
    return f"{name} could not be read ({reason}); the activity has no track."


class _Track:
    """Track points gathered column by column, as Strava's streams are."""

    def __init__(self) -> None:
        self.size = 0
        self._times: list[datetime | float | None] = []
        self._columns: dict[str, list[Any]] = {key: [] for key in _STREAM_KEYS[1:]}

    def add(self, moment: datetime | float | None, **values: Any) -> None:
        if self.size >= MAX_POINTS:
            raise ArchiveError(f"more than {MAX_POINTS} points; the rest was skipped")
        self.size += 1
        self._times.append(moment)
        for key, column in self._columns.items():
            value = values.get(key)
            column.append(round(value) if key in _WHOLE and value else value)

    def start(self) -> datetime | None:
        """The first absolute timestamp, when the file has one."""
        return next((t for t in self._times if isinstance(t, datetime)), None)

    def streams(self) -> dict[str, list[Any]]:
        candidates = {"time": _offsets(self._times), **self._columns}
        return {
            key: values
            for key, values in candidates.items()
            if any(value is not None for value in values)
        }


def _offsets(times: list[datetime | float | None]) -> list[Any]:
    first = next((t for t in times if t is not None), None)
    return [_offset(t, first) for t in times]


def _offset(moment: datetime | float | None, first: datetime | float | None) -> Any:
    if isinstance(moment, datetime) and isinstance(first, datetime):
        return round((moment - first).total_seconds())
    if isinstance(moment, int | float) and isinstance(first, int | float):
        # FIT devices without a clock count seconds from power-on instead.
        return round(moment - first)
    return None


def _read_fit(source: IO[bytes], track: _Track) -> None:
    reader = fitdecode.FitReader(
        source,
        check_crc=fitdecode.CrcCheck.DISABLED,
        error_handling=fitdecode.ErrorHandling.RAISE,
    )
    with reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record":
                _fit_point(frame, track)


def _fit_point(frame: Any, track: _Track) -> None:
    def value(*names: str) -> Any:
        for name in names:
            found = frame.get_value(name, fallback=None)
            if found is not None:
                return found
        return None

    lat, lng = value("position_lat"), value("position_long")
    moment = value("timestamp")
    track.add(
        moment if isinstance(moment, datetime | int | float) else None,
        latlng=_latlng(lat, lng, _SEMICIRCLE),
        distance=_float(value("distance")),
        altitude=_float(value("enhanced_altitude", "altitude")),
        heartrate=_float(value("heart_rate")),
        cadence=_float(value("cadence")),
        watts=_float(value("power")),
        temp=_float(value("temperature")),
    )


def _latlng(lat: Any, lng: Any, scale: float = 1.0) -> list[float] | None:
    lat, lng = _float(lat), _float(lng)
    if lat is None or lng is None:
        return None
    return [round(lat * scale, 7), round(lng * scale, 7)]


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _read_xml(source: IO[bytes], track: _Track) -> None:
    for point in _xml_points(source):
        _xml_point(point, track)


def _xml_points(source: IO[bytes]) -> Iterator[Element]:
    """Yield each finished `trkpt` or `Trackpoint`, then drop it from memory."""
    # Files come from strangers: expat (2.4.1 and later) refuses runaway entity
    # expansion and ElementTree never fetches external entities.
    parser: XMLPullParser[Element] = XMLPullParser(("start", "end"))
    parents: list[Element] = []
    for chunk in _xml_chunks(source):
        parser.feed(chunk)
        for item in parser.read_events():
            event, element = item[0], item[-1]
            if not isinstance(element, Element):
                continue
            if event == "start":
                parents.append(element)
                continue
            parents.pop()
            if _local(element.tag) in ("trkpt", "Trackpoint"):
                yield element
                if parents:
                    parents[-1].remove(element)
    parser.close()


def _xml_chunks(source: IO[bytes]) -> Iterator[bytes]:
    leading = True
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        if leading:
            chunk = chunk.lstrip(_XML_LEAD)
            leading = not chunk
        if chunk:
            yield chunk


def _xml_point(point: Element, track: _Track) -> None:
    texts = _descendant_texts(point)
    values = {
        key: _float(_first(texts, names))
        for key, names in _XML_FIELDS.items()
        if key != "time"
    }
    lat = point.get("lat", texts.get("LatitudeDegrees"))
    lng = point.get("lon", texts.get("LongitudeDegrees"))
    moment = _iso_date(_first(texts, _XML_FIELDS["time"]) or "")
    track.add(moment, latlng=_latlng(lat, lng), **values)


def _descendant_texts(element: Element) -> dict[str, str]:
    texts: dict[str, str] = {}
    for child in element.iter():
        if child is not element and child.text and child.text.strip():
            texts.setdefault(_local(child.tag), child.text.strip())
    return texts


def _first(texts: dict[str, str], names: Iterable[str]) -> str | None:
    return next((texts[name] for name in names if name in texts), None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _complete_from_streams(
    summary: dict[str, Any], streams: dict[str, list[Any]]
) -> None:
    """Add the first and last positions, as the API's summary carries them."""
    points = [point for point in streams.get("latlng", []) if point is not None]
    if points:
        summary.setdefault("start_latlng", points[0])
        summary.setdefault("end_latlng", points[-1])
