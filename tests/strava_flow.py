"""Test helpers shared by the product's tests: a service wired to a simulator.

`ServiceRig` builds a real Service against a running simulator and a real
Directus, with a clock shared with the simulator so that tests fast-forward
time (token expiry, rate windows) instead of waiting for it.
"""

from __future__ import annotations

import threading
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from directus_strava import settings as settings_module
from directus_strava.oauth import Connection
from directus_strava.service import Service
from simulator_support import ConsentForm
from strava_simulator import RunningSimulator

SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


class SharedClock:
    """Our clock and the simulator's, moved together; sleeping fast-forwards.

    `sim` is anything with the simulator's `control` client: a simulator in
    this process (RunningSimulator) or one run as its own process (bench/).
    """

    def __init__(self, sim: RunningSimulator | Any, start: float) -> None:
        self.sim = sim
        self.t = start
        self._lock = threading.Lock()
        sim.control.set_clock(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds
            self.sim.control.set_clock(self.t)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.advance(max(seconds, 0.001))
        return stop.is_set()


def settings_for(
    sim: RunningSimulator, directus_url: str, token: str, data_dir: Path, **more: Any
) -> settings_module.Settings:
    """Settings pointing the service at a simulator and a Directus."""
    values: dict[str, Any] = {
        "strava_client_id": sim.client_id,
        "strava_client_secret": sim.client_secret,
        "strava_web_url": sim.base_url,
        "strava_api_url": sim.api_url,
        "directus_url": directus_url,
        "directus_token": token,
        "service_secret_key": SECRET_KEY,
        "service_data_dir": data_dir,
    }
    values.update(more)
    return settings_module.load(**values)


def consent(
    url: str,
    decision: str = "authorize",
    untick: tuple[str, ...] = (),
    athlete: str | None = None,
) -> dict[str, str]:
    """Answer Strava's consent page as a browser would; returns callback params."""
    with httpx.Client() as http:
        page = http.get(url)
        page.raise_for_status()
        form = ConsentForm(page.text)
        target = urllib.parse.urljoin(str(page.url), form.action)
        fields = urllib.parse.urlencode(
            form.submit(decision, untick=untick, athlete=athlete)
        )
        answer = http.post(
            target,
            content=fields,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    location = answer.headers["location"]
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(location).query))


def connect(
    service: Service, untick: tuple[str, ...] = (), athlete: int | None = None
) -> Connection:
    """Connect one of the simulator's athletes (the first by default)."""
    url = service.tokens.begin("http://127.0.0.1:9/callback")
    chosen = str(athlete) if athlete is not None else None
    params = consent(url, untick=untick, athlete=chosen)
    connection, _ = service.tokens.finish(params)
    return connection
