"""Same-host deployment: Debian's nginx in front of Directus and the service.

nginx runs deploy/nginx.conf.example (addresses swapped for loopback ones)
with Directus at / and `directus-strava serve`, started as its own process
exactly as a deployment runs it, at /strava/. A person logs in once, in
Directus, and the service's pages know them; the webhook callback and the
health check pass through without any login; Strava (the simulator) validates
the callback through the proxy when the subscription is created.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import nginx_rig
from directus_strava import settings as settings_module
from directus_strava import webhooks
from directus_strava.access import SESSION_COOKIE
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup as setup_schema
from local_directus import Instance
from local_directus.instance import free_port
from strava_flow import SECRET_KEY
from strava_simulator import RunningSimulator, SimulatorConfig
from strava_simulator import running as simulator_running

pytestmark = pytest.mark.directus

COLLECTION = "nginx_test_activities"
PREFIX = "/strava"


@dataclass
class Deployment:
    """nginx's address, the settings the service runs with, the parts behind."""

    url: str
    env: dict[str, str] = field(repr=False)
    directus: Instance
    strava: RunningSimulator
    folder: Path


def _service_env(
    strava: RunningSimulator, directus: Instance, token: str, port: int, public: str
) -> dict[str, str]:
    settings = {
        "STRAVA_CLIENT_ID": str(strava.client_id),
        "STRAVA_CLIENT_SECRET": strava.client_secret,
        "STRAVA_WEB_URL": strava.base_url,
        "STRAVA_API_URL": strava.api_url,
        "DIRECTUS_URL": directus.url,
        "DIRECTUS_TOKEN": token,
        "DIRECTUS_COLLECTION": COLLECTION,
        "SERVICE_PUBLIC_URL": public + PREFIX,
        "SERVICE_PATH_PREFIX": PREFIX,
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(port),
        "SERVICE_SECRET_KEY": SECRET_KEY,
    }
    keep = {k: v for k, v in os.environ.items() if k not in settings_module.HINTS}
    return keep | settings


def _serve(env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "service.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "directus_strava", "serve"],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(url: str, child: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError((folder / "service.log").read_text())
        try:
            if httpx.get(url, timeout=2).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not answer within 30 s")


@pytest.fixture(scope="module")
def deployment(
    directus_sqlite: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("nginx")
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    token = setup_schema(admin, COLLECTION, service_user=True).service_token
    admin.close()
    assert token is not None
    nginx_port, service_port = free_port(), free_port()
    directus_address = directus_sqlite.url.removeprefix("http://")
    config = nginx_rig.render(
        folder, nginx_port, directus_address, f"127.0.0.1:{service_port}"
    )
    with (
        simulator_running(SimulatorConfig(seed=5, activities=4)) as strava,
        nginx_rig.running(config, nginx_port) as url,
    ):
        env = _service_env(strava, directus_sqlite, token, service_port, url)
        env["SERVICE_DATA_DIR"] = str(folder / "data")
        child = _serve(env, folder)
        try:
            _wait_healthy(f"http://127.0.0.1:{service_port}/health", child, folder)
            yield Deployment(url, env, directus_sqlite, strava, folder)
        finally:
            child.terminate()
            child.wait(40)


def _log_in_to_directus(client: httpx.Client, deployment: Deployment) -> None:
    answer = client.post(
        "/auth/login",
        json={
            "email": deployment.directus.admin_email,
            "password": deployment.directus.admin_password,
            "mode": "session",
        },
    )
    assert answer.status_code == 200, answer.text
    assert client.cookies.get("directus_session_token")


def test_one_directus_login_opens_the_service(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, timeout=20) as client:
        # Directus's own app comes through the proxy too.
        assert client.get("/server/ping").text == "pong"
        _log_in_to_directus(client, deployment)
        page = client.get(f"{PREFIX}/")
        assert page.status_code == 200
        assert "Connected athletes" in page.text
        assert 'name="password"' not in page.text
        activities = client.get(f"{PREFIX}/activities")
        assert activities.status_code == 200
        assert "Recent activities" in activities.text
        # The prefix typed without its slash, straight at the service, is the
        # status page too.
        service = f"http://127.0.0.1:{deployment.env['SERVICE_PORT']}"
        bare = client.get(service + PREFIX)
        assert bare.status_code == 200
        assert "Connected athletes" in bare.text


def test_without_a_login_the_pages_send_to_the_login_form(
    deployment: Deployment,
) -> None:
    with httpx.Client(base_url=deployment.url, timeout=20) as client:
        page = client.get(f"{PREFIX}/activities")
        assert page.status_code == 303
        assert page.headers["location"] == f"{PREFIX}/login?next=%2Factivities"
        form = client.get(page.headers["location"])
        assert form.status_code == 200
        assert 'name="password"' in form.text
        # A made-up Directus cookie is no way in either.
        client.cookies.set("directus_session_token", "forged")
        assert client.get(f"{PREFIX}/").status_code == 303


def test_a_logout_in_the_service_ends_the_directus_session(
    deployment: Deployment,
) -> None:
    with httpx.Client(base_url=deployment.url, timeout=20) as client:
        _log_in_to_directus(client, deployment)
        page = client.get(f"{PREFIX}/")
        assert page.status_code == 200
        csrf = _field(page.text, "csrf")
        out = client.post(f"{PREFIX}/logout", data={"csrf": csrf},
                          headers={"Origin": deployment.url})  # fmt: skip
        assert out.status_code == 303
        assert client.cookies.get(SESSION_COOKIE)
        assert client.get(f"{PREFIX}/").status_code == 303


def _field(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def test_the_webhook_callback_passes_without_a_login(deployment: Deployment) -> None:
    settings = _settings(deployment)
    callback = webhooks.callback_url(settings)
    assert callback.startswith(deployment.url + PREFIX + "/webhook/")
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "nginx-check",
        "hub.verify_token": webhooks.verify_token(settings),
    }
    answer = httpx.get(callback, params=query, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"hub.challenge": "nginx-check"}
    query["hub.verify_token"] = "wrong"
    assert httpx.get(callback, params=query, timeout=5).status_code == 403


def test_strava_validates_the_callback_through_the_proxy(
    deployment: Deployment,
) -> None:
    created = _cli(deployment, "subscription", "create")
    assert created.returncode == 0, created.stderr
    checked = _cli(deployment, "subscription", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    health = httpx.get(f"{deployment.url}{PREFIX}/health", timeout=10)
    assert health.status_code == 200
    report = health.json()
    assert report["subscription"] == "ok"
    assert report["directus"] is True
    assert report["directus_token"] == "ok"
    assert set(report["queue"]) >= {"waiting", "failed"}


def _cli(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "directus_strava", *args],
        env=deployment.env,
        cwd=deployment.folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_proxy_log_holds_no_secret(deployment: Deployment) -> None:
    # Runs last: every request above went through nginx and the service.
    service_log = (deployment.folder / "service.log").read_text()
    assert "event=request" in service_log
    assert deployment.env["DIRECTUS_TOKEN"] not in service_log
    assert webhooks.path_secret(_settings(deployment)) not in service_log
    assert deployment.directus.admin_password not in service_log


def _settings(deployment: Deployment) -> settings_module.Settings:
    return settings_module.load(
        **{name.lower(): value for name, value in deployment.env.items()
           if name in settings_module.HINTS}
    )  # fmt: skip
