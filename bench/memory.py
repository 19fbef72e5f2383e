"""Memory: peak resident memory importing a 24-hour activity and archives.

Run: `python3 -m uv run python bench/memory.py [--sizes 100,1000]`. Each case
runs in a fresh process (so one peak never hides another): importing the
simulator's 86,400-point day-long activity through the API, and importing
generated archives of each size. The baseline is the same process after its
imports, the service built and the place names loaded, before any work.
Prints a table; exits 1 when a peak passes GOAL_MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import archive_import
import rig
from directus_strava import places
from directus_strava.importer import import_archive
from local_directus import Instance

GOAL_MB = 200.0


@dataclass
class Case:
    """One import's peak resident memory, and the process's before it."""

    name: str
    idle_mb: float
    peak_mb: float

    @property
    def met(self) -> bool:
        return self.peak_mb < GOAL_MB


def resident_mb() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def day_long(instance: Instance) -> Case:
    """Import the simulator's day-long activity (in this process)."""
    options = {"specials": True, "day_long": True}
    with tempfile.TemporaryDirectory() as data, rig.simulator(6, **options) as sim:
        target = next(a for a in sim.control.activities() if "day_long" in a["tags"])
        collection = rig.collection(instance, "bench_memory")
        service, athlete = rig.service(sim, instance, Path(data), collection)
        places.load()
        service.importer.folder("gpx")
        idle = resident_mb()
        service.importer.import_activity(athlete, int(target["id"]))
        service.close()
    return Case(f"day-long activity, {target['points']:,} points", idle, peak_mb())


def archive(instance: Instance, path: Path, n: int) -> Case:
    """Import a generated archive (in this process)."""
    with tempfile.TemporaryDirectory() as data:
        collection = rig.collection(instance, "bench_memory")
        service = rig.offline_service(instance, Path(data), collection)
        places.load()
        service.importer.folder("gpx")
        idle = resident_mb()
        import_archive(service.importer, path, archive_import.ATHLETE)
        service.close()
    return Case(f"archive of {n:,} activities", idle, peak_mb())


def in_child(instance: Instance, *arguments: str) -> Case:
    """Run one case in a fresh Python process; returns what it measured."""
    command = [sys.executable, __file__, "--directus", instance.directory, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory case {arguments} failed:\n{done.stderr[-2000:]}")
    return Case(**json.loads(done.stdout.splitlines()[-1]))


def run(
    sizes: tuple[int, ...] = (100, 1000), instance: Instance | None = None
) -> list[Case]:
    """The day-long activity, then one archive per size, each in its own process."""
    if instance is None:
        with rig.directus("sqlite") as started:
            return run(sizes, started)
    cases = [in_child(instance, "--case", "day")]
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            path = archive_import.make_archive(Path(folder) / f"{n}.zip", n)
            cases.append(
                in_child(
                    instance, "--case", "archive", "--archive", str(path), "--n", str(n)
                )
            )
    return cases


def report(cases: list[Case]) -> str:
    """The cases as a table."""
    rows = [
        (
            c.name,
            f"{c.idle_mb:.0f} MB",
            f"{c.peak_mb:.0f} MB",
            f"{c.peak_mb - c.idle_mb:.0f} MB",
            f"< {GOAL_MB:.0f} MB",
            "met" if c.met else "MISSED",
        )
        for c in cases
    ]
    header = ("import", "before (baseline)", "peak", "peak - before", "goal", "verdict")
    return rig.table(header, rows)


def child(args: argparse.Namespace) -> int:
    instance = Instance.load(Path(args.directus))
    if args.case == "day":
        case = day_long(instance)
    else:
        case = archive(instance, Path(args.archive), args.n)
    print(json.dumps(case.__dict__))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--directus", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=("day", "archive"), help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)
    cases = run(tuple(int(size) for size in args.sizes.split(",")))
    print(report(cases))
    print(f"\n{rig.machine()}")
    return 0 if all(c.met for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
