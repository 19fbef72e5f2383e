"""What the benchmarks share: a Directus, a simulator process, a wired service.

The simulator runs in its own process, as Strava would, so its stream
rendering never shares our interpreter's lock and our CPU time is our own.
A Directus is started fresh, unless BENCH_DIRECTUS_SQLITE or
BENCH_DIRECTUS_POSTGRES names the folder of one `local-directus start` runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

import uvicorn
from starlette.applications import Starlette

import local_directus
import local_directus.instance
from directus_strava import settings as settings_module
from directus_strava import webhooks
from directus_strava.clock import Clock
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup
from directus_strava.service import Service
from local_directus import Flavour, Instance
from strava_flow import SECRET_KEY, connect
from strava_simulator import SimulatorControl

FLAVOURS: tuple[Flavour, ...] = ("sqlite", "postgres")
UNLIMITED = 10**9
DEFAULT_LIMITS = {
    "overall_15min": 200,
    "overall_daily": 2000,
    "read_15min": 100,
    "read_daily": 1000,
}
_NAMES = itertools.count()


@contextlib.contextmanager
def directus(flavour: Flavour) -> Iterator[Instance]:
    """A running local Directus of a flavour (reused when the environment says)."""
    named = os.environ.get(f"BENCH_DIRECTUS_{flavour.upper()}")
    if named:
        yield Instance.load(Path(named))
        return
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{flavour}-") as folder,
        local_directus.running(flavour, Path(folder)) as instance,
    ):
        yield instance


@dataclass
class Simulator:
    """A simulator process: its addresses, credentials and control client."""

    base_url: str
    api_url: str
    client_id: int
    client_secret: str
    control: SimulatorControl


@contextlib.contextmanager
def simulator(
    activities: int, seed: int = 1, sim_clock: bool = False, **options: Any
) -> Iterator[Simulator]:
    """A simulator in its own process with `activities` plain GPS activities.

    Without options the world has no manual, private or day-long specials, so
    every activity has streams; limits are lifted unless set again.
    """
    command = [sys.executable, "-m", "strava_simulator", "serve", "--port", "0"]
    command += ["--activities", "1", "--seed", str(seed)]
    command += ["--sim-clock"] if sim_clock else []
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        sim = _announced(process)
        seeded = {"specials": False, "day_long": False, **options}
        sim.control.seed(seed, activities=activities, **seeded)
        limits = dict.fromkeys(DEFAULT_LIMITS, UNLIMITED)
        sim.control.set_rate_limits(reset=True, **limits)
        yield sim
        sim.control.close()
    finally:
        process.terminate()
        process.wait(timeout=15)


def _announced(process: subprocess.Popen[str]) -> Simulator:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("the simulator process exited before announcing itself")
    urls = json.loads(line)
    return Simulator(
        urls["base_url"],
        urls["api_url"],
        int(urls["client_id"]),
        urls["client_secret"],
        SimulatorControl(urls["base_url"]),
    )


def collection(instance: Instance, prefix: str) -> str:
    """A new activities collection, named as no earlier run named one."""
    name = f"{prefix}_{next(_NAMES)}_{int(time.time() * 1000) % 10**9}"
    admin = DirectusClient(instance.url, instance.admin_token)
    setup(admin, name)
    admin.close()
    return name


def service(
    sim: Simulator,
    instance: Instance,
    data_dir: Path,
    collection: str,
    clock: Clock | None = None,
    **more: Any,
) -> tuple[Service, int]:
    """A service writing to a collection, its athlete connected."""
    values: dict[str, Any] = {
        "strava_client_id": sim.client_id,
        "strava_client_secret": sim.client_secret,
        "strava_web_url": sim.base_url,
        "strava_api_url": sim.api_url,
        "directus_url": instance.url,
        "directus_token": instance.admin_token,
        "directus_collection": collection,
        "service_secret_key": SECRET_KEY,
        "service_data_dir": data_dir,
        **more,
    }
    built = Service.build(settings_module.load(**values), clock=clock)
    return built, connect(built).athlete_id


def offline_service(instance: Instance, data_dir: Path, collection: str) -> Service:
    """A service writing to a collection that never calls Strava (archives)."""
    values: dict[str, Any] = {
        "strava_client_id": 1,
        "strava_client_secret": "unused",
        "strava_web_url": "http://127.0.0.1:9",
        "strava_api_url": "http://127.0.0.1:9/api/v3",
        "directus_url": instance.url,
        "directus_token": instance.admin_token,
        "directus_collection": collection,
        "service_secret_key": SECRET_KEY,
        "service_data_dir": data_dir,
    }
    return Service.build(settings_module.load(**values))


def reads(sim: Simulator) -> dict[str, int]:
    """Strava API reads the simulator served: list, detail, streams, all."""
    counts: dict[str, int] = sim.control.counters()["requests"]
    gets = {
        k: n
        for k, n in counts.items()
        if k.startswith("GET /api/") and "push_subscriptions" not in k
    }
    return {
        "list": sum(n for k, n in gets.items() if k.endswith("/athlete/activities")),
        "detail": sum(n for k, n in gets.items() if k.endswith("/activities/{id:int}")),
        "streams": sum(n for k, n in gets.items() if k.endswith("/streams")),
        "all": sum(gets.values()),
    }


@contextlib.contextmanager
def serving(service: Service, worker: bool = False) -> Iterator[str]:
    """Serve the webhook callback on SERVICE_PORT (and run the worker)."""
    app = Starlette(routes=webhooks.routes(service))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=service.settings.service_port, log_level="error"
    )
    server = uvicorn.Server(config)
    stop = threading.Event()
    threads = [threading.Thread(target=server.run, daemon=True)]
    if worker:
        threads.append(threading.Thread(target=service.worker.run, args=(stop,)))
    for thread in threads:
        thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield webhooks.callback_url(service.settings)
    finally:
        stop.set()
        server.should_exit = True
        for thread in threads:
            thread.join(timeout=30)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    return local_directus.instance.free_port()


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, readable as plain text too."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


def machine() -> str:
    """Cores, memory and Python, for the line under each table."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"{os.cpu_count()} cores, {memory:.0f} GB, Python {version}"
