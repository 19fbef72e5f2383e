"""The `directus-strava` command as a user meets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from directus_strava.cli import cli
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup
from served import free_port
from simulator_support import ConsentForm
from strava_flow import SECRET_KEY
from strava_simulator import RunningSimulator, SimulatorConfig, running


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "setup",
        "connect",
        "recent",
        "import",
        "sync",
        "serve",
        "backfill",
        "import-archive",
        "places",
        "subscription",
    ):
        assert f"  {command}" in result.output


def _unreachable_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment with valid settings that point nowhere."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRAVA_", "DIRECTUS_", "SERVICE_"))
    }
    base = {
        "STRAVA_CLIENT_ID": "1",
        "STRAVA_CLIENT_SECRET": "s",
        "DIRECTUS_URL": "http://127.0.0.1:9",
        "DIRECTUS_TOKEN": "t",
        "SERVICE_SECRET_KEY": SECRET_KEY,
        "SERVICE_DATA_DIR": str(tmp_path),
    }
    return clean | base | settings


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({}, "STRAVA_CLIENT_ID is not set: set it to"),
        ({"STRAVA_CLIENT_ID": "abc"}, "STRAVA_CLIENT_ID is not valid"),
        ({"SERVICE_SECRET_KEY": "short"}, "SERVICE_SECRET_KEY is not valid"),
        ({"DIRECTUS_URL": "not a url"}, "DIRECTUS_URL is not valid"),
        ({"SERVICE_PORT": "99999"}, "SERVICE_PORT is not valid"),
    ],
)
def test_a_bad_setting_is_one_plain_sentence(
    env: dict[str, str], sentence: str, tmp_path: Path
) -> None:
    settings = _unreachable_env(tmp_path, **env)
    if not env:
        settings.pop("STRAVA_CLIENT_ID")
    result = subprocess.run(
        [sys.executable, "-m", "directus_strava", "status"],
        env=settings,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {sentence}")
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running(SimulatorConfig(seed=3, activities=5)) as simulator:
        yield simulator


@pytest.mark.directus
def test_connect_recent_and_import_from_the_terminal(
    sim: RunningSimulator, directus_sqlite: Any, tmp_path: Path
) -> None:
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    setup(admin, "cli_acts")
    env = {
        **os.environ,
        "STRAVA_CLIENT_ID": str(sim.client_id),
        "STRAVA_CLIENT_SECRET": sim.client_secret,
        "STRAVA_WEB_URL": sim.base_url,
        "STRAVA_API_URL": sim.api_url,
        "DIRECTUS_URL": directus_sqlite.url,
        "DIRECTUS_TOKEN": directus_sqlite.admin_token,
        "DIRECTUS_COLLECTION": "cli_acts",
        "SERVICE_SECRET_KEY": SECRET_KEY,
        "SERVICE_DATA_DIR": str(tmp_path),
    }
    connect = subprocess.Popen(
        [sys.executable, "-m", "directus_strava", "connect", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert connect.stdout is not None
    assert "Open this address" in connect.stdout.readline()
    url = connect.stdout.readline().strip()
    assert url.startswith(sim.base_url + "/oauth/authorize?")
    callback = _consent_then_callback(url)
    assert callback.status_code == 200
    output, errors = connect.communicate(timeout=60)
    assert connect.returncode == 0, errors
    assert "Connected athlete" in output

    recent = _run(env, tmp_path, "recent")
    assert "not imported" in recent
    first = recent.split()[0]
    _run(env, tmp_path, "import", first)
    assert "in Directus" in _run(env, tmp_path, "recent")
    assert [int(i["id"]) for i in admin.items("cli_acts")] == [int(first)]


def _consent_then_callback(url: str) -> httpx.Response:
    # The callback URL carries the authorization code; the session's secret
    # watch rightly flags httpx's INFO line for it, so it is fetched quietly.
    with httpx.Client() as http:
        page = http.get(url)
        form = ConsentForm(page.text)
        target = urllib.parse.urljoin(str(page.url), form.action)
        answer = http.post(
            target,
            content=urllib.parse.urlencode(form.submit("authorize")),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        location = answer.headers["location"]
    with urllib.request.urlopen(location, timeout=30) as reply:
        return httpx.Response(reply.status)


def _run(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "directus_strava", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _eventually(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_serve_takes_its_worker_process_along(stop: int, tmp_path: Path) -> None:
    settings = _unreachable_env(tmp_path, SERVICE_PORT=str(free_port()))
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "directus_strava", "serve"],
            env=settings,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            (worker,) = _eventually(lambda: _children(serve.pid), 30)
            serve.send_signal(stop)
            serve.wait(60)
        finally:
            serve.kill()
    # Stopped or killed, `serve` leaves no worker running on its own.
    _eventually(lambda: not _alive(worker), 60)
    if stop == signal.SIGTERM:
        assert serve.returncode == 0
