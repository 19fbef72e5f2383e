"""The demo a newcomer runs first: Directus, Strava (simulated) and the service.

`local-directus demo` starts a fresh local Directus on SQLite, creates the
activities collection in it, starts the Strava simulator (unless real
STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET are set), then runs
`directus-strava serve` in the foreground with settings pointing at them.
Ctrl-C stops all three. The product never imports the simulator: both run as
their own processes and meet over HTTP, as they would in production.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from local_directus.errors import LocalDirectusError
from local_directus.instance import (
    INSTANCE_FILE,
    Instance,
    free_port,
    is_running,
    start,
    stop,
    write_env,
)

log = logging.getLogger(__name__)

SIMULATED_ACTIVITIES = 24
SIMULATOR_SEED = 7


@dataclass(frozen=True)
class Strava:
    """Where the service finds Strava, and whether it is the simulator."""

    settings: dict[str, str]
    simulated: bool
    web_url: str


def run(directory: Path, port: int) -> None:
    """Start everything under `directory`, serve until Ctrl-C, stop everything."""
    directory = directory.resolve()
    reset(directory)
    instance = start("sqlite", directory / "directus")
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        create_collection(instance)
        strava = real_strava() or simulated_strava(directory, helpers)
        port = port if port_free(port) else free_port()
        settings = service_settings(instance, strava, directory, port)
        write_env(directory / "service.env", settings)
        announce(instance, strava, directory, port)
        serve(settings)
    finally:
        for helper in helpers:
            end(helper)
        stop(instance)


def reset(directory: Path) -> None:
    """Stop a demo left running and start from an empty folder."""
    record = directory / "directus" / INSTANCE_FILE
    if record.exists():
        instance = Instance.load(record.parent)
        if is_running(instance):
            stop(instance)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def create_collection(instance: Instance) -> None:
    """Run `directus-strava setup` against the new Directus with the admin token."""
    env = dict(os.environ, DIRECTUS_ADMIN_TOKEN=instance.admin_token)
    env["DIRECTUS_URL"] = instance.url
    command = [sys.executable, "-m", "directus_strava", "setup"]
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise LocalDirectusError(
            "directus-strava setup failed: " + done.stderr.decode(errors="replace")
        )


def real_strava() -> Strava | None:
    """Real Strava credentials from the environment, if any."""
    client_id = os.environ.get("STRAVA_CLIENT_ID")
    secret = os.environ.get("STRAVA_CLIENT_SECRET")
    if not (client_id and secret):
        return None
    settings = {"STRAVA_CLIENT_ID": client_id, "STRAVA_CLIENT_SECRET": secret}
    web = os.environ.get("STRAVA_WEB_URL", "https://www.strava.com")
    return Strava(settings, simulated=False, web_url=web)


def simulated_strava(directory: Path, helpers: list[subprocess.Popen[bytes]]) -> Strava:
    """Start the simulator as its own process and read where it listens."""
    command = [
        sys.executable, "-m", "strava_simulator.cli", "serve",
        "--seed", str(SIMULATOR_SEED), "--activities", str(SIMULATED_ACTIVITIES),
        "--recorded",
    ]  # fmt: skip
    with (directory / "simulator.log").open("ab") as output:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=output, start_new_session=True
        )
    helpers.append(process)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise LocalDirectusError(
            f"the Strava simulator did not start; see {directory / 'simulator.log'}"
        )
    urls = json.loads(line)
    settings = {
        "STRAVA_CLIENT_ID": str(urls["client_id"]),
        "STRAVA_CLIENT_SECRET": str(urls["client_secret"]),
        "STRAVA_WEB_URL": urls["base_url"],
        "STRAVA_API_URL": urls["api_url"],
        "SERVICE_DEMO": "true",
    }
    return Strava(settings, simulated=True, web_url=urls["base_url"])


def service_settings(
    instance: Instance, strava: Strava, directory: Path, port: int
) -> dict[str, str]:
    """The environment `directus-strava serve` runs with."""
    return strava.settings | {
        "DIRECTUS_URL": instance.url,
        "DIRECTUS_TOKEN": instance.admin_token,
        "SERVICE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(port),
        "SERVICE_SECRET_KEY": secrets.token_urlsafe(32),
        "SERVICE_DATA_DIR": str(directory / "service"),
    }


def announce(instance: Instance, strava: Strava, directory: Path, port: int) -> None:
    """Print where everything is and how to log in."""
    kind = "simulated (nothing touches the real Strava)" if strava.simulated else ""
    lines = [
        "",
        "directus-strava demo is running:",
        f"  the service      http://127.0.0.1:{port}/",
        f"  Directus admin   {instance.url}/admin",
        f"  log in to both   {instance.admin_email} / {instance.admin_password}",
        f"  Strava           {strava.web_url} {kind}".rstrip(),
        f"  settings         {directory / 'service.env'} (for the CLI: "
        f"set -a; . {directory / 'service.env'})",
        "Connect an athlete, import from the Activities page, then open the "
        "collection in Directus (table and map). Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def serve(settings: dict[str, str]) -> None:
    """Run the service in the foreground until it ends or Ctrl-C."""
    command = [sys.executable, "-m", "directus_strava", "serve"]
    process = subprocess.Popen(command, env=os.environ | settings)
    try:
        process.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the service too; give it time to stop.
        end(process)
    if process.returncode not in (0, -signal.SIGINT, -signal.SIGTERM, None):
        raise LocalDirectusError(f"the service exited with {process.returncode}")


def end(process: subprocess.Popen[bytes]) -> None:
    """Stop a helper process politely, then by force."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def port_free(port: int) -> bool:
    """True when nothing listens on the loopback port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
