"""Run the simulator: in a background thread for tests, or as a process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from strava_simulator.app import Simulator, build_app
from strava_simulator.config import SimulatorConfig
from strava_simulator.control import SimulatorControl


@dataclass
class RunningSimulator:
    """A started simulator: its addresses, credentials and control client."""

    sim: Simulator
    base_url: str
    control: SimulatorControl

    @property
    def api_url(self) -> str:
        """Base of the API, e.g. http://127.0.0.1:PORT/api/v3."""
        return self.base_url + self.sim.config.api_prefix

    @property
    def oauth_url(self) -> str:
        """Base of the OAuth endpoints."""
        return self.base_url + "/oauth"

    @property
    def client_id(self) -> int:
        """The simulated application's client id."""
        return self.sim.config.client_id

    @property
    def client_secret(self) -> str:
        """The simulated application's (fake) client secret."""
        return self.sim.config.client_secret


def _server(sim: Simulator) -> uvicorn.Server:
    """A uvicorn server for the simulator, bound where the config says."""
    config = uvicorn.Config(
        build_app(sim),
        host=sim.config.host,
        port=sim.config.port,
        log_level="warning",
        lifespan="on",
        http="h11",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sim.server = server
    return server


def _bound_url(sim: Simulator, server: uvicorn.Server) -> str:
    """The base URL with the port the OS picked."""
    port = server.servers[0].sockets[0].getsockname()[1]
    sim.base_url = f"http://{sim.config.host}:{port}"
    return sim.base_url


@contextmanager
def running(config: SimulatorConfig | None = None) -> Iterator[RunningSimulator]:
    """Serve a simulator from a thread until the block ends."""
    sim = Simulator(config)
    server = _server(sim)
    thread = threading.Thread(target=server.run, name="strava-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Strava simulator did not start; see the log above")
        time.sleep(0.01)
    url = _bound_url(sim, server)
    control = SimulatorControl(url)
    try:
        yield RunningSimulator(sim, url, control)
    finally:
        control.close()
        server.should_exit = True
        thread.join(timeout=10)


def serve(config: SimulatorConfig, announce: Callable[[Simulator], None]) -> None:
    """Serve in the foreground; `announce` runs once the port is bound."""
    sim = Simulator(config)
    server = _server(sim)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            _bound_url(sim, server)
            announce(sim)
        await task

    asyncio.run(main())
