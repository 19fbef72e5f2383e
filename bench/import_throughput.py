"""Import throughput: our importer against writing the same data straight in.

Run: `python3 -m uv run python bench/import_throughput.py [--n 1000]
[--flavour sqlite|postgres]`. N activities with streams come from a simulator
process with no latency and no limits; the worker imports them into a real
local Directus. In the same run, chunk by chunk, the baseline writes the very
items and GPX files our importer sent to a second collection of the same
Directus: items in batches of 100 (POST /items), files one POST /files each,
from one keep-alive client. Prints a table; exits 1 when a flavour runs
below GOAL of the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import rig
from directus_strava import gpx, places, routes
from directus_strava.jobs import BULK
from directus_strava.service import Service
from local_directus import Flavour, Instance

GOAL = 0.8
BATCH = 100
# Directus's default MAX_PAYLOAD_SIZE is 1 MB; stay a little under it.
PAYLOAD_LIMIT = 1_000_000 - 4096


@dataclass
class Result:
    """One flavour's figures; times are wall-clock seconds for all N."""

    flavour: str
    activities: int
    ours_s: float
    baseline_s: float
    cpu_ms: float
    derive_ms: float
    requests_per_activity: float
    gpx_kb: float

    @property
    def ours_per_s(self) -> float:
        return self.activities / self.ours_s

    @property
    def baseline_per_s(self) -> float:
        return self.activities / self.baseline_s

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s

    @property
    def met(self) -> bool:
        return self.ratio >= GOAL


@dataclass
class Capture:
    """What our importer sent to Directus since the last take()."""

    items: list[dict[str, Any]] = field(default_factory=list)
    files: list[tuple[str, bytes, str, str | None, str]] = field(default_factory=list)
    requests: int = 0

    def take(self) -> tuple[list[dict[str, Any]], list[Any]]:
        items, files = self.items, self.files
        self.items, self.files = [], []
        return items, files


def capture(service: Service) -> Capture:
    """Record the importer's merges and uploads, passing them through."""
    seen = Capture()
    client = service.directus
    merge, upload, request = client.merge, client.upload, client.request

    def merging(collection: str, items: list[dict[str, Any]]) -> None:
        seen.items.extend(items)
        merge(collection, items)

    def uploading(
        content: bytes,
        filename: str,
        mime: str,
        folder: str | None,
        title: str,
        replace: str | None = None,
        file_id: str | None = None,
    ) -> str:
        seen.files.append((filename, content, mime, folder, title))
        return upload(content, filename, mime, folder, title, replace, file_id)

    def requesting(method: str, path: str, **kwargs: Any) -> Any:
        seen.requests += 1
        return request(method, path, **kwargs)

    client.merge = merging  # type: ignore[method-assign]
    client.upload = uploading  # type: ignore[method-assign]
    client.request = requesting  # type: ignore[method-assign]
    return seen


class CpuMeter:
    """Thread CPU time spent inside chosen functions (GPX, route, places...)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - began

        return timed


@contextmanager
def metered(service: Service) -> Iterator[CpuMeter]:
    """Meter the derivation work: streams, GPX, route, places and mapping."""
    meter = CpuMeter()
    patched = [
        (gpx, "unwrap_streams"),
        (gpx, "build_gpx"),
        (routes, "route_from_streams"),
        (places, "place_fields"),
    ]
    originals = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, meter.wrap(getattr(module, name)))
    mapping = service.importer.config.mapping
    service.importer.config.mapping = meter.wrap(mapping)
    try:
        yield meter
    finally:
        for (module, name), original in zip(patched, originals, strict=True):
            setattr(module, name, original)
        service.importer.config.mapping = mapping


def batches(items: list[dict[str, Any]]) -> Iterator[bytes]:
    """JSON bodies of up to BATCH items each, within Directus's payload limit."""
    encoded = [json.dumps(item).encode() for item in items]
    batch: list[bytes] = []
    for item in encoded:
        size = sum(len(b) + 1 for b in batch) + len(item) + 2
        if batch and (len(batch) == BATCH or size > PAYLOAD_LIMIT):
            yield b"[" + b",".join(batch) + b"]"
            batch = []
        batch.append(item)
    if batch:
        yield b"[" + b",".join(batch) + b"]"


class Baseline:
    """Writes given items and files straight to Directus, in the best batches."""

    def __init__(self, instance: Instance, collection: str) -> None:
        self.collection = collection
        self.http = httpx.Client(
            base_url=instance.url,
            headers={"Authorization": f"Bearer {instance.admin_token}"},
            timeout=120,
        )

    def write(self, items: list[dict[str, Any]], files: list[Any]) -> float:
        """Seconds to write the items in batches and upload each file."""
        began = time.perf_counter()
        for body in batches(items):
            self._ok(
                self.http.post(
                    f"/items/{self.collection}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            )
        for filename, content, mime, folder, title in files:
            fields = {"title": title, **({"folder": folder} if folder else {})}
            upload = {"file": (filename, content, mime)}
            self._ok(self.http.post("/files", data=fields, files=upload))
        return time.perf_counter() - began

    @staticmethod
    def _ok(response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise RuntimeError(f"baseline write failed: {response.text[:300]}")

    def close(self) -> None:
        self.http.close()


def run(n: int = 1000, instance: Instance | None = None) -> Result:
    """Import N activities and write the baseline, interleaved chunk by chunk."""
    if instance is None:
        with rig.directus("sqlite") as started:
            return run(n, started)
    with tempfile.TemporaryDirectory() as data, rig.simulator(n) as sim:
        ours = rig.collection(instance, "bench_ours")
        service, athlete = rig.service(sim, instance, Path(data), ours)
        baseline = Baseline(instance, rig.collection(instance, "bench_base"))
        try:
            return _measure(service, athlete, sim, baseline, instance.flavour, n)
        finally:
            baseline.close()
            service.close()


def _measure(
    service: Service,
    athlete: int,
    sim: rig.Simulator,
    baseline: Baseline,
    flavour: str,
    n: int,
) -> Result:
    ids = [int(a["id"]) for a in sim.control.activities()][:n]
    places.load()
    service.importer.folder("gpx")
    seen = capture(service)
    ours = base = cpu = 0.0
    gpx_bytes = 0
    with metered(service) as meter:
        for start in range(0, len(ids), BATCH):
            for activity_id in ids[start : start + BATCH]:
                service.queue.put(
                    "import", athlete_id=athlete, object_id=activity_id, priority=BULK
                )
            wall, began = time.perf_counter(), time.process_time()
            service.worker.drain()
            ours += time.perf_counter() - wall
            cpu += time.process_time() - began
            items, files = seen.take()
            gpx_bytes += sum(len(f[1]) for f in files)
            base += baseline.write(items, files)
    failed = service.queue.counts()["failed"]
    if failed:
        raise RuntimeError(
            f"{failed} imports failed: {service.queue.listing('failed')}"
        )
    return Result(
        flavour,
        len(ids),
        ours,
        base,
        cpu * 1000 / len(ids),
        meter.seconds * 1000 / len(ids),
        seen.requests / len(ids),
        gpx_bytes / 1024 / len(ids),
    )


def report(results: list[Result]) -> str:
    """The results as a table."""
    rows = [
        (
            r.flavour,
            r.activities,
            f"{r.ours_per_s:.1f}/s",
            f"{r.baseline_per_s:.1f}/s",
            f"{r.ratio:.2f}",
            f"≥ {GOAL}",
            "met" if r.met else "MISSED",
            f"{r.cpu_ms:.0f} ms",
            f"{r.derive_ms:.0f} ms",
            f"{r.requests_per_activity:.2f}",
            f"{r.gpx_kb:.0f} KB",
        )
        for r in results
    ]
    header = (
        "Directus",
        "activities",
        "ours",
        "baseline",
        "ratio",
        "goal",
        "verdict",
        "CPU/activity",
        "of it GPX+route+places+mapping",
        "Directus requests/activity",
        "GPX/activity",
    )
    return rig.table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--flavour", choices=rig.FLAVOURS, action="append")
    args = parser.parse_args()
    results = []
    flavours: list[Flavour] = args.flavour or list(rig.FLAVOURS)
    for flavour in flavours:
        with rig.directus(flavour) as instance:
            results.append(run(args.n, instance))
        print(report(results[-1:]), flush=True)
    print()
    print(report(results))
    print(f"\n{rig.machine()}")
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
