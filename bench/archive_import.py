"""Archive import: activities per second from a bulk export, against parsing it.

Run: `python3 -m uv run python bench/archive_import.py [--n 300]`. Generates
an export zip of N activities in turn FIT, GPX and TCX (gzipped, as Strava
exports them), times reading it with the archive reader alone (the baseline:
the same parser, nothing written) and then `import_archive` into a real local
Directus (item, GPX file and original file per activity). Prints a table.

Shortcoming: there is no FIT writer here, so every FIT member is the recorded
326-point fixture; the GPX and TCX members are generated with POINTS points.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rig
import tracks
from directus_strava import gpx, places
from directus_strava.archive import read_archive
from directus_strava.importer import import_archive
from local_directus import Instance

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "archive"
POINTS = 5000
ATHLETE = 4242
FIRST_ID = 20_000_000_000
KINDS = ("fit", "gpx", "tcx")


@dataclass
class Result:
    """Activities per second importing and only parsing the same archive."""

    activities: int
    archive_mb: float
    parse_s: float
    import_s: float
    cpu_ms: float
    problems: int

    @property
    def ratio(self) -> float:
        return self.parse_s / self.import_s


def track(points: int = POINTS) -> dict[str, list[Any]]:
    """Streams of a realistic activity: the day-long track's first points."""
    return {kind: data[:points] for kind, data in tracks.day_long(points).items()}


def tcx(streams: dict[str, list[Any]], start: float) -> bytes:
    """A Garmin TCX document of the streams, as devices write them."""
    points = []
    for i, (lat, lng) in enumerate(streams["latlng"]):
        moment = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + streams["time"][i])
        )
        points.append(
            f"<Trackpoint><Time>{moment}</Time><Position><LatitudeDegrees>{lat}"
            f"</LatitudeDegrees><LongitudeDegrees>{lng}</LongitudeDegrees>"
            f"</Position><AltitudeMeters>{streams['altitude'][i]}</AltitudeMeters>"
            f"<DistanceMeters>{3 * i}</DistanceMeters>"
            f"<HeartRateBpm><Value>{streams['heartrate'][i]}</Value></HeartRateBpm>"
            "</Trackpoint>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<TrainingCenterDatabase '
        'xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">'
        '<Activities><Activity Sport="Running"><Lap><Track>'
        + "".join(points)
        + "</Track></Lap></Activity></Activities></TrainingCenterDatabase>"
    ).encode()


def originals(points: int = POINTS) -> dict[str, bytes]:
    """One gzipped original of each kind, by extension."""
    streams = track(points)
    start = 1_700_000_000.0
    activity = {"id": 1, "name": "Archived run", "start_date": "2023-11-14T22:13:20Z"}
    made = gpx.build_gpx(activity, streams) or b""
    return {
        "fit": (FIXTURES / "12866632127.fit.gz").read_bytes(),
        "gpx": gzip.compress(made),
        "tcx": gzip.compress(tcx(streams, start)),
    }


def make_archive(path: Path, n: int, points: int = POINTS) -> Path:
    """An export zip of N activities, FIT, GPX and TCX in turn."""
    with (FIXTURES / "activities.csv").open(encoding="utf-8", newline="") as file:
        header, row = list(csv.reader(file))
    filename = header.index("Filename")
    files = originals(points)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for number in range(n):
            kind = KINDS[number % len(KINDS)]
            member = f"activities/{FIRST_ID + number}.{kind}.gz"
            cells = list(row)
            cells[0], cells[2] = str(FIRST_ID + number), f"Archived {kind} {number}"
            cells[filename] = member
            writer.writerow(cells)
            archive.writestr(member, files[kind])
        archive.writestr("activities.csv", out.getvalue())
    return path


def parse_only(path: Path) -> float:
    """Seconds to read every activity and its streams, writing nothing."""
    began = time.perf_counter()
    points = sum(len(a.streams.get("latlng", [])) for a in read_archive(path))
    assert points > 0
    return time.perf_counter() - began


def run(n: int = 300, instance: Instance | None = None) -> Result:
    """Parse an N-activity archive, then import it into Directus."""
    if instance is None:
        with rig.directus("sqlite") as started:
            return run(n, started)
    with tempfile.TemporaryDirectory() as folder:
        path = make_archive(Path(folder) / "export.zip", n)
        collection = rig.collection(instance, "bench_archive")
        service = rig.offline_service(instance, Path(folder), collection)
        try:
            places.load()
            service.importer.folder("gpx")
            parse_s = parse_only(path)
            wall, cpu = time.perf_counter(), time.process_time()
            report = import_archive(service.importer, path, ATHLETE)
            import_s = time.perf_counter() - wall
            cpu_ms = (time.process_time() - cpu) * 1000 / n
        finally:
            service.close()
        size = path.stat().st_size / 2**20
    return Result(n, size, parse_s, import_s, cpu_ms, len(report.problems))


def report(result: Result) -> str:
    """The result as a table."""
    r = result
    rows = [
        (
            r.activities,
            f"{r.archive_mb:.1f} MB",
            f"{r.activities / r.import_s:.1f}/s",
            f"{r.activities / r.parse_s:.1f}/s",
            f"{r.ratio:.2f}",
            f"{r.cpu_ms:.0f} ms",
            r.problems,
        )
    ]
    header = (
        "activities",
        "archive",
        "import",
        "parse only (baseline)",
        "ratio",
        "CPU/activity",
        "problems",
    )
    return rig.table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    result = run(args.n)
    print(report(result))
    print(f"\n{rig.machine()}")
    return 0 if result.problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
