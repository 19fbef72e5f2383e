"""Start and stop one local Directus on a free loopback port.

An instance lives in its own folder: the ``.env`` Directus reads, the log,
uploads, the SQLite file (``sqlite`` flavour) and ``instance.json``, which
holds everything another process needs to use or stop it. Directus runs as
the leader of its own process group so stopping it leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import httpx

from local_directus import postgres
from local_directus.errors import LocalDirectusError
from local_directus.install import Installation, cache_root, install

log = logging.getLogger(__name__)

Flavour = Literal["sqlite", "postgres"]
FLAVOURS: tuple[Flavour, ...] = ("sqlite", "postgres")
ADMIN_EMAIL = "admin@example.com"
INSTANCE_FILE = "instance.json"
LOG_FILE = "directus.log"
# Two cores, a cold V8 and database migrations: starting takes tens of seconds.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Instance:
    """A running local Directus and the admin credentials for it."""

    url: str
    admin_email: str
    admin_password: str
    admin_token: str
    flavour: Flavour
    pid: int
    directory: str
    database: str

    def __repr__(self) -> str:
        # Keep the password and the token out of tracebacks and test reports.
        return f"Instance(url={self.url!r}, flavour={self.flavour!r}, pid={self.pid})"

    @classmethod
    def load(cls, directory: Path) -> Instance:
        """Read the instance a previous start recorded in a folder."""
        path = directory / INSTANCE_FILE
        if not path.exists():
            raise LocalDirectusError(f"no {INSTANCE_FILE} in {directory}; start first")
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        """Write this instance to its folder, readable by the owner only."""
        path = Path(self.directory) / INSTANCE_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)


def default_directory(flavour: Flavour) -> Path:
    """Return a new folder under the cache for a caller that names none."""
    return cache_root() / "instances" / f"{flavour}-{secrets.token_hex(4)}"


def start(
    flavour: Flavour, directory: Path | None = None, port: int | None = None
) -> Instance:
    """Start a fresh Directus of a flavour in an empty folder; return it."""
    if flavour not in FLAVOURS:
        raise LocalDirectusError(f"unknown flavour {flavour!r}; use sqlite or postgres")
    folder = prepare_folder(directory or default_directory(flavour))
    installation = install()
    port = port or free_port()

    database = str(folder / "data.db")
    if flavour == "postgres":
        database = postgres.create_database(postgres.Server.from_environment())
    try:
        return launch(installation, flavour, folder, port, database)
    except BaseException:
        if flavour == "postgres":
            postgres.drop_database(postgres.Server.from_environment(), database)
        raise


def prepare_folder(directory: Path) -> Path:
    """Create the instance folder, refusing one a previous instance used."""
    folder = directory.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    used = [name for name in (INSTANCE_FILE, ".env") if (folder / name).exists()]
    if used:
        raise LocalDirectusError(
            f"{folder} already holds an instance ({used[0]}); "
            "stop it and remove the folder, or choose another --dir"
        )
    return folder


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(
    installation: Installation, flavour: Flavour, folder: Path, port: int, db: str
) -> Instance:
    """Bootstrap and start Directus, then hand the admin a static token."""
    url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(18)
    settings = directus_settings(installation, flavour, folder, url, db, password)
    write_env(folder / ".env", settings)
    env = {**installation.node.environment(), **settings}

    started = time.monotonic()
    bootstrap(installation, folder, env)
    process = spawn(installation, folder, env)
    try:
        token = wait_ready(url, password, process, folder / LOG_FILE)
    except BaseException:
        terminate(process.pid)
        raise

    instance = Instance(
        url, ADMIN_EMAIL, password, token, flavour, process.pid, str(folder), db
    )
    instance.save()
    seconds = time.monotonic() - started
    log.info(
        "event=directus_started flavour=%s url=%s seconds=%.1f", flavour, url, seconds
    )
    return instance


def directus_settings(
    installation: Installation,
    flavour: Flavour,
    folder: Path,
    url: str,
    database: str,
    password: str,
) -> dict[str, str]:
    """Return the Directus environment for one development instance."""
    settings = {
        "HOST": "127.0.0.1",
        "PORT": url.rsplit(":", 1)[1],
        "PUBLIC_URL": url,
        "SECRET": secrets.token_urlsafe(32),
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": password,
        "TELEMETRY": "false",
        "LOG_LEVEL": "warn",
        "LOG_STYLE": "raw",
        "RATE_LIMITER_ENABLED": "false",
        "CACHE_ENABLED": "false",
        "STORAGE_LOCATIONS": "local",
        "STORAGE_LOCAL_ROOT": str(folder / "uploads"),
        "EXTENSIONS_PATH": str(folder / "extensions"),
        # Directus looks for extension packages next to a package.json; the
        # install's own has none, which keeps the start-up log quiet.
        "PACKAGE_FILE_LOCATION": str(installation.directory),
    }
    return settings | database_settings(flavour, database)


def database_settings(flavour: Flavour, database: str) -> dict[str, str]:
    """Return the DB_* settings for the flavour's database."""
    if flavour == "sqlite":
        return {"DB_CLIENT": "sqlite3", "DB_FILENAME": database}
    server = postgres.Server.from_environment()
    return {
        "DB_CLIENT": "pg",
        "DB_HOST": server.host,
        "DB_PORT": str(server.port),
        "DB_DATABASE": database,
        "DB_USER": server.user,
    }


def write_env(path: Path, settings: dict[str, str]) -> None:
    """Write the settings as a .env file only the owner can read."""
    for name in ("uploads", "extensions"):
        (path.parent / name).mkdir(exist_ok=True)
    lines = "".join(f"{key}={value}\n" for key, value in settings.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(lines)


def bootstrap(installation: Installation, folder: Path, env: dict[str, str]) -> None:
    """Create Directus's tables and the admin user."""
    command = [*installation.command(), "bootstrap"]
    with (folder / LOG_FILE).open("ab") as output:
        try:
            done = subprocess.run(
                command,
                cwd=folder,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise LocalDirectusError(
                f"directus bootstrap took over {START_TIMEOUT:.0f} s; see {output.name}"
            ) from error
    if done.returncode != 0:
        raise LocalDirectusError(
            f"directus bootstrap failed (exit {done.returncode}):\n"
            + log_tail(folder / LOG_FILE)
        )


def spawn(
    installation: Installation, folder: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start the Directus server as the leader of a new process group."""
    command = [*installation.command(), "start"]
    with (folder / LOG_FILE).open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_ready(
    url: str, password: str, process: subprocess.Popen[bytes], log_path: Path
) -> str:
    """Wait until Directus answers, then return the admin's new static token."""
    deadline = time.monotonic() + START_TIMEOUT
    while not answers_ping(url):
        if process.poll() is not None:
            raise LocalDirectusError(
                f"Directus exited with {process.returncode} while starting:\n"
                + log_tail(log_path)
            )
        if time.monotonic() > deadline:
            raise LocalDirectusError(
                f"Directus did not answer {url} within {START_TIMEOUT:.0f} s:\n"
                + log_tail(log_path)
            )
        time.sleep(0.5)

    token = grant_token(url, ADMIN_EMAIL, password)
    if not is_healthy(url, token):
        raise LocalDirectusError(
            f"{url}/server/health is not ok:\n" + log_tail(log_path)
        )
    return token


def answers_ping(url: str) -> bool:
    """Tell whether Directus listens and answers its public ping."""
    try:
        response = httpx.get(f"{url}/server/ping", timeout=5.0)
    except httpx.TransportError:
        return False
    return response.status_code == 200


def is_healthy(url: str, token: str) -> bool:
    """Tell whether /server/health answers ok (Directus 12 wants a user)."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.get(f"{url}/server/health", headers=headers, timeout=10.0)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json().get("status") == "ok"


def grant_token(url: str, email: str, password: str) -> str:
    """Log in as the admin and give the admin user a new static token."""
    token = secrets.token_urlsafe(32)
    with httpx.Client(base_url=url, timeout=30.0) as client:
        login = client.post("/auth/login", json={"email": email, "password": password})
        if login.status_code != 200:
            raise LocalDirectusError(f"admin login failed with {login.status_code}")
        access = login.json()["data"]["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        patched = client.patch("/users/me", json={"token": token}, headers=headers)
        if patched.status_code != 200:
            raise LocalDirectusError(
                f"setting the admin token failed with {patched.status_code}"
            )
    return token


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file, or a note that there is none."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(target: Instance | Path | str) -> None:
    """Stop an instance (or the one recorded in a folder) and drop its database."""
    instance = target if isinstance(target, Instance) else Instance.load(Path(target))
    if is_running(instance):
        terminate(instance.pid)
    if instance.flavour == "postgres":
        postgres.drop_database(postgres.Server.from_environment(), instance.database)
    log.info("event=directus_stopped flavour=%s pid=%s", instance.flavour, instance.pid)


def terminate(pid: int) -> None:
    """End a process group politely, then by force; return when none is left."""
    if not signal_group(pid, signal.SIGTERM):
        return
    if wait_gone(pid, STOP_TIMEOUT):
        return
    log.warning("event=directus_kill pid=%s after_seconds=%.0f", pid, STOP_TIMEOUT)
    signal_group(pid, signal.SIGKILL)
    if not wait_gone(pid, STOP_TIMEOUT):
        raise LocalDirectusError(f"process group {pid} survived SIGKILL")


def signal_group(pid: int, sig: int) -> bool:
    """Send a signal to a process group; return False when it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until no live process of the group is left; reap the leader if ours."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not group_members(pid):
            return True
        time.sleep(0.1)
    return False


def group_members(pgid: int) -> list[int]:
    """Return the live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        # A zombie's parent (maybe the process that started it) must reap it;
        # it runs nothing and holds no port, so it counts as gone.
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def is_running(instance: Instance) -> bool:
    """Tell whether the instance's Directus still runs under its recorded pid."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(instance.pid, os.WNOHANG)
    # A pid recorded long ago may now belong to someone else: Directus runs
    # in its instance folder, so a process elsewhere is not ours to signal.
    try:
        return os.readlink(f"/proc/{instance.pid}/cwd") == instance.directory
    except OSError:
        return False


@contextlib.contextmanager
def running(flavour: Flavour, directory: Path | None = None) -> Iterator[Instance]:
    """Run an instance for the duration of a with-block, for fixtures."""
    instance = start(flavour, directory)
    try:
        yield instance
    finally:
        stop(instance)
