"""Importing activities: from Strava's data to Directus items and files.

The importer takes its clients as arguments and holds no schedule of its own:
the worker decides when it runs. Writes are idempotent: an item is merged by
its Strava id, a GPX file is replaced in place, and an activity whose item and
file are unchanged writes nothing at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import posixpath
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from directus_strava import gpx, places, routes
from directus_strava.archive import ArchiveActivity, read_archive
from directus_strava.directus import DirectusClient
from directus_strava.errors import DirectusError, DirectusUnavailable
from directus_strava.mapping import Mapping_, clean_text, default_mapping
from directus_strava.schema import upload_folder
from directus_strava.settings import OnDelete
from directus_strava.store import Store
from directus_strava.strava import StravaClient

log = logging.getLogger(__name__)

# Fields only a detailed import (or an archive) knows; summaries leave them be.
RICH_FIELDS = frozenset(
    {
        "description",
        "private_note",
        "calories",
        "gear_name",
        "device_name",
        "gpx",
        "raw",
        "route",
        "original_file",
    }
)
# Item fields an archive import may still write over an API import's values.
ALWAYS_WRITTEN = frozenset({"id", "source", "synced_at"})
ORIGINAL_TYPES = {
    ".gz": "application/gzip",
    ".fit": "application/vnd.ant.fit",
    ".gpx": "application/gpx+xml",
    ".tcx": "application/vnd.garmin.tcx+xml",
}


@dataclass
class ImportConfig:
    """Where and how items are written."""

    collection: str = "strava_activities"
    mapping: Mapping_ = default_mapping
    on_delete: OnDelete = OnDelete.REMOVE
    route_tolerance_m: float = 5.0
    photos: bool = False


@dataclass
class Outcome:
    """What one import did."""

    activity_id: int
    wrote_item: bool = False
    wrote_gpx: bool = False
    wrote_original: bool = False
    notes: list[str] = field(default_factory=list)


class Importer:
    """Writes Strava activities into Directus, remembering what it wrote."""

    def __init__(
        self,
        strava: StravaClient | None,
        directus: DirectusClient,
        store: Store,
        config: ImportConfig,
    ) -> None:
        self.strava = strava
        self.directus = directus
        self.store = store
        self.config = config
        self._folders: dict[str, str] = {}

    def import_activity(
        self, athlete_id: int, activity_id: int, bulk: bool = False
    ) -> Outcome:
        """Fetch an activity's detail and streams and write it completely."""
        return self.write_fetched(athlete_id, self.fetch(athlete_id, activity_id, bulk))

    def fetch(
        self, athlete_id: int, activity_id: int, bulk: bool = False
    ) -> dict[str, Any]:
        """An activity's detail and streams from Strava, ready for write_fetched."""
        assert self.strava is not None, "importing from the API needs Strava"
        detail = self.strava.activity(athlete_id, activity_id, bulk=bulk)
        streams = self.strava.streams(athlete_id, activity_id, bulk=bulk)
        if self.config.photos and detail.get("total_photo_count"):
            photos = self.strava.photos(athlete_id, activity_id, bulk=bulk)
            detail = {**detail, "photo_list": photos}
        return {"detail": detail, "streams": gpx.unwrap_streams(streams)}

    def write_fetched(self, athlete_id: int, fetched: Mapping[str, Any]) -> Outcome:
        """Write what fetch returned."""
        return self.write_detail(athlete_id, fetched["detail"], fetched["streams"])

    def write_detail(
        self,
        athlete_id: int,
        activity: Mapping[str, Any],
        streams: Mapping[str, Sequence[Any]],
        source: str = "api",
        original_file: str | None = None,
    ) -> Outcome:
        """Write an activity with its streams: GPX, route, places, fields.

        API and archive imports of one activity meet in one item. The API's
        values win over the archive's, while an archive import after an API
        import only fills the fields still empty; neither ever removes the
        other's GPX or original file, and `source` becomes "both".
        """
        activity_id = int(activity["id"])
        outcome = Outcome(activity_id)
        # The ledger learns the start date too, which reconciliation's window
        # needs for activities imported by id (webhooks, `import`).
        self.remember_summary(athlete_id, activity)
        ledger = self.ledger(activity_id)
        gaps_only = source == "archive" and _source(ledger) in ("api", "both")
        if gaps_only and ledger["gpx_file"]:
            gpx_file: str | None = str(ledger["gpx_file"])
        else:
            gpx_file = self._write_gpx(activity, streams, ledger, outcome)
        joined = _joined(_source(ledger), source)
        extras = self._extras(activity, streams, "detail", joined)
        extras.update(gpx=gpx_file, original_file=original_file)
        item = _without_none(self.config.mapping(activity, extras))
        if gaps_only:
            item = self._gaps(item)
        outcome.wrote_item = self._merge(item, ledger, athlete_id, "detail", joined)
        if gpx_file is None:
            outcome.notes.append("no GPS: imported without route and GPX")
        log.debug(
            "event=activity_imported activity=%s item=%s gpx=%s",
            activity_id,
            outcome.wrote_item,
            outcome.wrote_gpx,
        )
        return outcome

    def write_archive(self, athlete_id: int, activity: ArchiveActivity) -> Outcome:
        """Write one activity of a bulk export: item, GPX, route, original file.

        A damaged or unreadable original is skipped (no GPX, no copy) and its
        problem noted; the activity's row in activities.csv is written anyway.
        """
        summary = {**activity.summary, "athlete": {"id": athlete_id}}
        ledger = self.ledger(int(summary["id"]))
        usable = activity.problem is None
        original = self._keep_original(activity, ledger) if usable else None
        streams = activity.streams if usable else {}
        outcome = self.write_detail(athlete_id, summary, streams, "archive", original)
        outcome.wrote_original = original is not None and (
            ledger is None or ledger["original_file"] != original
        )
        if activity.problem:
            outcome.notes.append(activity.problem)
        return outcome

    def has_api_detail(self, activity_id: int) -> bool:
        """True when the API's detail is in Directus and its summary unchanged."""
        row = self.ledger(activity_id)
        return (
            row is not None
            and row["level"] == "detail"
            and _source(row) in ("api", "both")
            and row["imported_hash"] == row["summary_hash"]
        )

    def write_summaries(
        self, athlete_id: int, summaries: Sequence[Mapping[str, Any]]
    ) -> int:
        """Write summary items in one batch; returns how many were written."""
        items = []
        for summary in summaries:
            ledger = self.ledger(int(summary["id"]))
            deeper = ledger is not None and ledger["level"] != "summary"
            item = self._summary_item(summary, deeper)
            if ledger is None or ledger["item_hash"] != _hash(item):
                items.append(item)
        self.directus.merge(self.config.collection, items)
        for item in items:
            self._record(int(item["id"]), athlete_id, "summary", _hash(item))
        self._remember_summaries(athlete_id, summaries)
        return len(items)

    def delete_activity(self, activity_id: int) -> None:
        """Reflect a deletion on Strava, as ON_DELETE says."""
        ledger = self.ledger(activity_id)
        if ledger is None or ledger["item_hash"] is None:
            self._forget_unwritten(activity_id, ledger)
            return
        if self.config.on_delete is OnDelete.MARK:
            body = {"id": activity_id, "deleted_on_strava": True}
            self.directus.merge(self.config.collection, [body])
            self._set_state(activity_id, "deleted")
            return
        self.directus.delete_item(self.config.collection, activity_id)
        if ledger is not None and ledger["gpx_file"]:
            self.directus.delete_file(ledger["gpx_file"])
        self.store.db.execute(
            "DELETE FROM ledger WHERE activity_id = ?", (activity_id,)
        )

    def _forget_unwritten(self, activity_id: int, ledger: Any) -> None:
        # Never imported (or only listed): no item to remove or to mark.
        if ledger is not None and ledger["gpx_file"]:
            self.directus.delete_file(ledger["gpx_file"])
        self.store.db.execute(
            "DELETE FROM ledger WHERE activity_id = ?", (activity_id,)
        )

    def forget_athlete(self, athlete_id: int) -> int:
        """Apply ON_DELETE to every activity of an athlete who left."""
        rows = self.store.db.execute(
            "SELECT activity_id FROM ledger WHERE athlete_id = ? AND state != 'listed'",
            (athlete_id,),
        ).fetchall()
        for row in rows:
            self.delete_activity(int(row["activity_id"]))
        if self.config.on_delete is OnDelete.REMOVE:
            self.store.db.execute(
                "DELETE FROM ledger WHERE athlete_id = ?", (athlete_id,)
            )
        return len(rows)

    def mark_failed(self, activity_id: int, athlete_id: int, error: str) -> None:
        """Record that an activity could not be imported, and why."""
        self.store.db.execute(
            "INSERT INTO ledger(activity_id, athlete_id, state, last_error, "
            "updated_at) VALUES (?, ?, 'failed', ?, ?) "
            "ON CONFLICT(activity_id) DO UPDATE SET state = 'failed', "
            "last_error = excluded.last_error, updated_at = excluded.updated_at",
            (activity_id, athlete_id, error[:2000], time.time()),
        )

    def folder(self, field: str) -> str | None:
        """The folder files of a field go into (looked up once)."""
        if field not in self._folders:
            folder = upload_folder(self.directus, self.config.collection, field)
            self._folders[field] = folder or ""
        return self._folders[field] or None

    def _summary_item(self, summary: Mapping[str, Any], deeper: bool) -> dict[str, Any]:
        extras = self._extras(summary, {}, "summary", "api")
        item = _without_none(self.config.mapping(summary, extras))
        if deeper:
            # Never let a summary overwrite what a detailed import wrote.
            for name in (*RICH_FIELDS, "detail_level", "source", "start_point"):
                item.pop(name, None)
        return item

    def _extras(
        self,
        activity: Mapping[str, Any],
        streams: Mapping[str, Sequence[Any]],
        level: str,
        source: str,
    ) -> dict[str, Any]:
        polyline = (activity.get("map") or {}).get("polyline") or (
            activity.get("map") or {}
        ).get("summary_polyline")
        extras: dict[str, Any] = {
            "route": routes.route_from_streams(
                streams.get("latlng"), polyline, self.config.route_tolerance_m
            ),
            "start_point": routes.point_geojson(activity.get("start_latlng")),
            "detail_level": level,
            "source": source,
            "raw": _raw(activity),
        }
        extras.update(places.place_fields(activity))
        if level == "summary":
            extras.pop("raw")
        return extras

    def _write_gpx(
        self,
        activity: Mapping[str, Any],
        streams: Mapping[str, Sequence[Any]],
        ledger: Any,
        outcome: Outcome,
    ) -> str | None:
        document = gpx.build_gpx(activity, streams)
        if document is None:
            return ledger["gpx_file"] if ledger else None
        digest = hashlib.sha256(document).hexdigest()
        existing = ledger["gpx_file"] if ledger else None
        if existing and ledger["gpx_hash"] == digest:
            return str(existing)
        name = f"strava-{int(activity['id'])}.gpx"
        title = clean_text(activity.get("name"), 200) or name
        file_id = self.directus.upload(
            document,
            name,
            "application/gpx+xml",
            self.folder("gpx"),
            title,
            replace=existing,
            file_id=None if existing else self._file_key(activity, "gpx"),
        )
        self._record_file(int(activity["id"]), file_id, digest)
        outcome.wrote_gpx = True
        return file_id

    def _merge(
        self,
        item: dict[str, Any],
        ledger: Any,
        athlete_id: int,
        level: str,
        source: str | None = None,
    ) -> bool:
        digest = _hash(item)
        if ledger is not None and ledger["item_hash"] == digest:
            return False
        stamped = {**item, "synced_at": _now_iso()}
        self.directus.merge(self.config.collection, [stamped])
        self._record(int(item["id"]), athlete_id, level, digest)
        if source is not None:
            self.store.db.execute(
                "UPDATE ledger SET source = ? WHERE activity_id = ?",
                (source, int(item["id"])),
            )
        return True

    def _gaps(self, item: dict[str, Any]) -> dict[str, Any]:
        """The part of an archive item that fills fields still empty."""
        found = self.directus.items_by_id(self.config.collection, [int(item["id"])])
        existing = found[0] if found else {}
        return {
            key: value
            for key, value in item.items()
            if key in ALWAYS_WRITTEN or existing.get(key) is None
        }

    def _keep_original(self, activity: ArchiveActivity, ledger: Any) -> str | None:
        """Upload the export's original file once; returns its file id."""
        if activity.original_bytes is None or activity.original_name is None:
            return None
        if ledger is not None and ledger["original_file"]:
            return str(ledger["original_file"])
        name = posixpath.basename(activity.original_name)
        mime = ORIGINAL_TYPES.get(posixpath.splitext(name)[1].lower(), "")
        title = clean_text(activity.summary.get("name"), 200) or name
        file_id = self.directus.upload(
            activity.original_bytes,
            name,
            mime or "application/octet-stream",
            self.folder("original_file"),
            title,
            file_id=self._file_key(activity.summary, "original"),
        )
        self.store.db.execute(
            "INSERT INTO ledger(activity_id, athlete_id, state, original_file, "
            "updated_at) VALUES (?, 0, 'listed', ?, ?) "
            "ON CONFLICT(activity_id) DO UPDATE SET "
            "original_file = excluded.original_file",
            (int(activity.summary["id"]), file_id, time.time()),
        )
        return file_id

    def _file_key(self, activity: Mapping[str, Any], kind: str) -> str:
        """The id an activity's file gets in Directus, the same on every try.

        A crash between an upload and the ledger noting it would otherwise
        leave the first copy behind and upload a second one on the next try.
        """
        name = f"directus-strava:{self.config.collection}:{activity['id']}:{kind}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def ledger(self, activity_id: int) -> Any:
        """What the ledger knows of an activity (None if nothing)."""
        return self.store.db.execute(
            "SELECT * FROM ledger WHERE activity_id = ?", (activity_id,)
        ).fetchone()

    def _record(
        self, activity_id: int, athlete_id: int, level: str, digest: str
    ) -> None:
        self.store.db.execute(
            "INSERT INTO ledger(activity_id, athlete_id, state, level, item_hash, "
            "imported_hash, updated_at) VALUES (?, ?, 'imported', ?, ?, "
            "(SELECT summary_hash FROM ledger WHERE activity_id = ?), ?) "
            "ON CONFLICT(activity_id) DO UPDATE SET state = 'imported', "
            "athlete_id = excluded.athlete_id, "
            "level = CASE WHEN ledger.level = 'detail' THEN 'detail' "
            "ELSE excluded.level END, item_hash = excluded.item_hash, "
            "imported_hash = ledger.summary_hash, last_error = NULL, "
            "updated_at = excluded.updated_at",
            (activity_id, athlete_id, level, digest, activity_id, time.time()),
        )

    def _record_file(self, activity_id: int, file_id: str, digest: str) -> None:
        self.store.db.execute(
            "INSERT INTO ledger(activity_id, athlete_id, state, gpx_file, gpx_hash, "
            "updated_at) VALUES (?, 0, 'listed', ?, ?, ?) "
            "ON CONFLICT(activity_id) DO UPDATE SET gpx_file = excluded.gpx_file, "
            "gpx_hash = excluded.gpx_hash",
            (activity_id, file_id, digest, time.time()),
        )

    def _set_state(self, activity_id: int, state: str) -> None:
        self.store.db.execute(
            "UPDATE ledger SET state = ?, updated_at = ? WHERE activity_id = ?",
            (state, time.time(), activity_id),
        )

    def _remember_summaries(
        self, athlete_id: int, summaries: Sequence[Mapping[str, Any]]
    ) -> None:
        """Keep what the list showed, for the pages' import state."""
        for summary in summaries:
            self.remember_summary(athlete_id, summary)

    def remember_summary(self, athlete_id: int, summary: Mapping[str, Any]) -> None:
        """Note an activity seen in Strava's list (without importing it)."""
        self.store.db.execute(
            "INSERT INTO ledger(activity_id, athlete_id, state, name, sport_type, "
            "start_date, distance, summary_hash, updated_at) "
            "VALUES (?, ?, 'listed', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(activity_id) DO UPDATE SET name = excluded.name, "
            "sport_type = excluded.sport_type, start_date = excluded.start_date, "
            "distance = excluded.distance, summary_hash = excluded.summary_hash",
            (
                int(summary["id"]),
                athlete_id,
                clean_text(summary.get("name")),
                summary.get("sport_type") or summary.get("type"),
                summary.get("start_date"),
                summary.get("distance"),
                _summary_hash(summary),
                time.time(),
            ),
        )


@dataclass
class ArchiveReport:
    """What an archive import did, for the CLI."""

    activities: int = 0
    items: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)


def import_archive(
    importer: Importer,
    path: Path,
    athlete_id: int,
    progress: Callable[[ArchiveReport], None] = lambda report: None,
) -> ArchiveReport:
    """Import a Strava bulk export zip, one activity at a time, no API calls.

    A damaged file or an activity Directus refuses is reported and skipped;
    Directus being down stops the import, and running it again carries on
    (unchanged items and kept originals are not written twice).
    """
    report = ArchiveReport()
    for activity in read_archive(path):
        report.activities += 1
        try:
            outcome = importer.write_archive(athlete_id, activity)
        except DirectusUnavailable:
            raise
        except DirectusError as exc:
            report.problems.append(f"activity {activity.summary['id']}: {exc}")
        else:
            report.items += outcome.wrote_item
            report.files += outcome.wrote_gpx + outcome.wrote_original
            report.problems.extend([activity.problem] if activity.problem else [])
        progress(report)
    log.info("event=archive_imported file=%s activities=%s items=%s files=%s "
             "problems=%s", path.name, report.activities, report.items,
             report.files, len(report.problems))  # fmt: skip
    return report


def _source(ledger: Any) -> str | None:
    # Rows written before the ledger knew sources came from the API.
    if ledger is None:
        return None
    if ledger["source"]:
        return str(ledger["source"])
    return "api" if ledger["level"] == "detail" else None


def _joined(before: str | None, now: str) -> str:
    """The item's source after an import from `now` on top of `before`."""
    if before in (None, now):
        return now
    return "both"


def import_state(row: Any) -> str:
    """Where an activity of the ledger stands, in the words pages and CLI show."""
    if row["state"] == "failed":
        return "failed"
    if row["state"] == "listed":
        return "not imported"
    if row["level"] == "detail" and row["imported_hash"] != row["summary_hash"]:
        return "out of date"
    return "in Directus" if row["level"] == "detail" else "summary only"


def _summary_hash(summary: Mapping[str, Any]) -> str:
    # Counters that change without an edit do not make an item out of date.
    keys = (
        "name",
        "sport_type",
        "distance",
        "moving_time",
        "private",
        "gear_id",
        "commute",
        "visibility",
        "start_date",
    )
    return _hash({key: summary.get(key) for key in keys})


def _without_none(item: dict[str, Any]) -> dict[str, Any]:
    # Absent values never erase what another import (API or archive) wrote.
    return {key: value for key, value in item.items() if value is not None}


def _raw(activity: Mapping[str, Any]) -> dict[str, Any]:
    # The raw copy keeps every field but the track polylines, which can pass
    # Directus's payload limit and live in `route` and the GPX instead.
    raw = dict(activity)
    if isinstance(raw.get("map"), dict):
        raw["map"] = {k: v for k, v in raw["map"].items() if k != "polyline"}
    finite: dict[str, Any] = _finite(raw)
    return finite


def _finite(value: Any) -> Any:
    # Python's JSON reader accepts NaN and Infinity, JSON (and Directus) do not.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_finite(inner) for inner in value]
    return value


def _hash(item: Mapping[str, Any]) -> str:
    encoded = json.dumps(item, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refresh_places(
    directus: DirectusClient, collection: str, everything: bool = False
) -> int:
    """Fill place names from what Directus already holds; no Strava request."""
    done, page = 0, 1
    while True:
        params: dict[str, Any] = {
            "fields": "id,raw,start_point,route",
            "limit": 200,
            "sort": "id",
            "page": page,
        }
        if not everything:
            # Updated items leave the filter, so the first page is always next.
            params["filter[places_status][_null]"] = "true"
        items = directus.items(collection, **params)
        if not items:
            return done
        updates = [
            {"id": item["id"], **places.place_fields(_ends(item))} for item in items
        ]
        directus.merge(collection, updates)
        done += len(updates)
        page += 1 if everything else 0


def _ends(item: Mapping[str, Any]) -> dict[str, Any]:
    """Start and end [lat, lng] of an item, from its raw copy or its geometry."""
    raw = item.get("raw") or {}
    start = raw.get("start_latlng") or _latlng(item.get("start_point"), 0)
    end = raw.get("end_latlng") or _latlng(item.get("route"), -1)
    return {"start_latlng": start, "end_latlng": end}


def _latlng(geometry: Mapping[str, Any] | None, index: int) -> list[float] | None:
    if not geometry:
        return None
    coordinates = geometry.get("coordinates") or []
    if geometry.get("type") == "LineString":
        coordinates = coordinates[index] if coordinates else []
    return [coordinates[1], coordinates[0]] if len(coordinates) == 2 else None
