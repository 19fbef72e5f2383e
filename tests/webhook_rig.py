"""A service serving its webhook callback on loopback, for the webhook tests.

`serving()` runs the callback routes with uvicorn in a thread and the worker
and scheduler beside them, as the real service does; `eventually()` waits for
an effect that happens in the background.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette

from directus_strava import webhooks
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup
from directus_strava.service import Service
from local_directus.instance import free_port
from served import serve
from strava_flow import settings_for
from strava_simulator import RunningSimulator

T = TypeVar("T")
NAMES = itertools.count()


def callback_app(service: Service, scheduler: bool = True) -> Starlette:
    """The webhook routes alone, with the worker (and scheduler) in threads."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        if scheduler:
            threads = service.start_background(stop)
        else:
            threads = [threading.Thread(target=service.worker.run, args=(stop,))]
            threads[0].start()
        yield
        stop.set()
        for thread in threads:
            thread.join(timeout=10)

    return Starlette(routes=webhooks.routes(service), lifespan=lifespan)


@contextlib.contextmanager
def serving(service: Service, scheduler: bool = True) -> Iterator[str]:
    """Serve the callback on SERVICE_PORT; yields the callback URL."""
    app = callback_app(service, scheduler)
    with serve(app, port=service.settings.service_port):
        yield webhooks.callback_url(service.settings)


def eventually(probe: Callable[[], T], timeout: float = 30, what: str = "") -> T:
    """The first truthy result of `probe`, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        time.sleep(0.1)


def item(admin: Any, collection: str, activity_id: int) -> dict[str, Any] | None:
    """The Directus item of an activity, or None."""
    found = admin.items(collection, **{"filter[id][_eq]": activity_id})
    return found[0] if found else None


def gpx_files(admin: Any, activity_id: int, since: str) -> list[dict[str, Any]]:
    """Directus files uploaded for an activity's GPX since an ISO time."""
    params = {
        "filter[filename_download][_eq]": f"strava-{activity_id}.gpx",
        "filter[uploaded_on][_gte]": since,
    }
    result: list[dict[str, Any]] = admin.request("GET", "/files", params=params)
    return result


def file_exists(admin: Any, file_id: str) -> bool:
    """Whether a Directus file is still there."""
    params = {"filter[id][_eq]": file_id}
    return bool(admin.request("GET", "/files", params=params))


def make_service(
    sim: RunningSimulator, directus: Any, data_dir: Path, **more: Any
) -> tuple[Service, DirectusClient, str]:
    """A service on a free port with its own new collection (admin token)."""
    collection = f"wh_{next(NAMES)}_{int(time.time() * 1000) % 10**8}"
    admin = DirectusClient(directus.url, directus.admin_token)
    setup(admin, collection)
    port = free_port()
    settings = settings_for(
        sim,
        directus.url,
        directus.admin_token,
        data_dir,
        directus_collection=collection,
        service_port=port,
        service_public_url=f"http://127.0.0.1:{port}",
        **more,
    )
    return Service.build(settings), admin, collection
