"""Importing Strava's bulk export zip into a real Directus, without the API."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from directus_strava.archive import parse_activity_file
from directus_strava.cli import cli
from directus_strava.directus import DirectusClient
from directus_strava.importer import import_archive
from directus_strava.schema import setup
from directus_strava.service import Service
from strava_flow import connect, settings_for
from strava_simulator import RunningSimulator, SeedOptions, SimulatorConfig, running

pytestmark = pytest.mark.directus

FIXTURES = Path(__file__).parent / "fixtures" / "archive"
GPX_NS = {"g": "http://www.topografix.com/GPX/1/1"}
ID, NAME, TYPE, DESCRIPTION, PRIVATE_NOTE, FILENAME = 0, 2, 3, 4, 10, 12
ATHLETE = 4242


def rows_of(name: str) -> tuple[list[str], list[str]]:
    with (FIXTURES / name).open(encoding="utf-8", newline="") as handle:
        header, row = list(csv.reader(handle))
    return header, row


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


ORIGINALS = {
    "activities/1001.fit.gz": (FIXTURES / "12866632127.fit.gz").read_bytes(),
    "activities/1002.fit": (FIXTURES / "berlin_0.9km.fit").read_bytes(),
    "activities/1003.gpx": (FIXTURES / "berlin_0.9km.gpx").read_bytes(),
    "activities/1004.gpx.gz": gz((FIXTURES / "berlin_0.9km.gpx").read_bytes()),
    "activities/1005.tcx": (FIXTURES / "17611540601.tcx").read_bytes(),
    "activities/1006.tcx.gz": gz((FIXTURES / "17611540601.tcx").read_bytes()),
    "activities/1007.fit.gz": b"\x1f\x8b\x08\x00 this is no gzip at all",
}
MANUAL = 90_000_008


def make_row(template: list[str], activity_id: int, filename: str) -> list[str]:
    row = list(template)
    row[ID], row[FILENAME] = str(activity_id), filename
    row[NAME] = f"Archived {activity_id}"
    row[DESCRIPTION] = "Line one\nline two"
    row[PRIVATE_NOTE] = "archive note"
    return row


def build_export(path: Path, language: str, ids: dict[str, int]) -> Path:
    """A zip like Strava's: the CSV in `language` and the original files."""
    header, template = rows_of("activities.csv" if language == "en" else
                               "activities_de.csv")  # fmt: skip
    rows = [make_row(template, ids[name], name) for name in ORIGINALS]
    manual = make_row(template, MANUAL + len(ids), "")
    manual[TYPE] = "Walk"
    rows.append(manual)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("activities.csv", text.getvalue())
        for name, data in ORIGINALS.items():
            archive.writestr(name, data)
        archive.writestr("media/readme.txt", "not an activity")
    return path


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    options = SeedOptions(specials=False, day_long=False)
    with running(SimulatorConfig(seed=21, activities=3, seed_options=options)) as s:
        yield s


def make_service(
    sim: RunningSimulator, directus: Any, tmp_path: Path, collection: str
) -> tuple[Service, DirectusClient]:
    admin = DirectusClient(directus.url, directus.admin_token)
    setup(admin, collection)
    settings = settings_for(
        sim, directus.url, directus.admin_token, tmp_path,
        directus_collection=collection,
    )  # fmt: skip
    return Service.build(settings), admin


def trackpoints(document: bytes) -> int:
    tree = etree.fromstring(document)
    return len(tree.findall(".//g:trkpt", GPX_NS))


@pytest.mark.parametrize("language", ["en", "de"])
def test_archive_import_writes_every_item_gpx_route_and_original(
    sim: RunningSimulator, directus: Any, tmp_path: Path, language: str
) -> None:
    collection = f"archive_{language}_{directus.flavour}"
    service, admin = make_service(sim, directus, tmp_path, collection)
    base = 90_000_000 if language == "en" else 91_000_000
    ids = {name: base + n for n, name in enumerate(ORIGINALS, start=1)}
    path = build_export(tmp_path / "export.zip", language, ids)

    report = import_archive(service.importer, path, ATHLETE)
    again = import_archive(service.importer, path, ATHLETE)
    service.close()

    assert report.activities == 8
    assert report.items == 8
    assert report.files == 2 * 6  # GPX and original of each readable file
    [problem] = report.problems
    assert "1007.fit.gz" in problem
    assert (again.items, again.files) == (0, 0), "a second run writes nothing"
    items = {int(i["id"]): i for i in admin.items(collection, limit=-1)}
    assert set(items) == {*ids.values(), MANUAL + len(ids)}
    for name, activity_id in ids.items():
        item = items[activity_id]
        assert item["name"] == f"Archived {activity_id}"
        assert item["description"] == "Line one\nline two"
        assert item["private_note"] == "archive note"
        assert item["source"] == "archive"
        assert int(item["athlete_id"]) == ATHLETE  # a string on PostgreSQL
        if name.endswith("1007.fit.gz"):
            assert (item["gpx"], item["route"], item["original_file"]) == (None,) * 3
            continue
        points = [
            p for p in parse_activity_file(name, ORIGINALS[name]).streams["latlng"] if p
        ]
        assert trackpoints(admin.download(item["gpx"])) == len(points)
        assert admin.download(item["original_file"]) == ORIGINALS[name]
        assert item["route"]["type"] == "LineString"
        start = item["route"]["coordinates"][0]
        assert start == pytest.approx([points[0][1], points[0][0]], abs=1e-5)
    manual = items[MANUAL + len(ids)]
    assert manual["sport_type"] == "Walk"
    assert (manual["gpx"], manual["route"], manual["original_file"]) == (None,) * 3


def test_archive_and_api_imports_merge_into_one_item(
    sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path
) -> None:
    service, admin = make_service(sim, directus_sqlite, tmp_path, "archive_merge")
    athlete = connect(service).athlete_id
    first, second = (a["id"] for a in sim.control.activities(athlete)[:2])
    ids = dict.fromkeys(ORIGINALS, 0)
    ids["activities/1003.gpx"], ids["activities/1005.tcx"] = first, second
    path = build_export(tmp_path / "export.zip", "en", ids)
    service.importer.import_activity(athlete, first)  # API, then the archive
    api_first = item_of(admin, first)

    import_archive(service.importer, path, athlete)
    merged = item_of(admin, first)
    service.importer.import_activity(athlete, second)  # archive, then the API
    later = item_of(admin, second)
    service.close()

    assert merged["source"] == "both"
    assert merged["name"] == api_first["name"] != f"Archived {first}"
    assert merged["gpx"] == api_first["gpx"]
    assert merged["raw"] == api_first["raw"]
    assert merged["original_file"] is not None
    assert admin.download(merged["original_file"]) == ORIGINALS["activities/1003.gpx"]
    assert merged["private_note"] == (api_first["private_note"] or "archive note")
    assert later["source"] == "both"
    assert later["original_file"] is not None
    assert later["detail_level"] == "detail"
    assert later["raw"]["id"] == second


def item_of(admin: DirectusClient, activity_id: int) -> dict[str, Any]:
    [found] = admin.items("archive_merge", **{"filter[id][_eq]": activity_id})
    return found


def test_cli_imports_an_archive_with_a_progress_bar(
    sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    service, admin = make_service(sim, directus_sqlite, tmp_path, "archive_cli")
    ids = {name: 92_000_000 + n for n, name in enumerate(ORIGINALS, start=1)}
    path = build_export(tmp_path / "export.zip", "en", ids)
    for key, value in service.settings.model_dump(mode="json").items():
        if value is not None:
            monkeypatch.setenv(key.upper(), str(value))
    for name in ("strava_client_secret", "directus_token", "service_secret_key"):
        secret = getattr(service.settings, name).get_secret_value()
        monkeypatch.setenv(name.upper(), secret)
    service.close()

    refused = CliRunner().invoke(cli, ["import-archive", str(path)])
    result = CliRunner().invoke(cli, ["import-archive", str(path), "--athlete", "7"])

    assert refused.exit_code == 1
    assert "--athlete" in refused.output
    assert result.exit_code == 0, result.output
    assert "8/8" in result.output
    assert "skipped: activities/1007.fit.gz could not be read" in result.output
    assert "8 activities read, 8 items and 12 files written, 1 problems" in (
        result.output
    )
    assert len(admin.items("archive_cli", limit=-1)) == 8
