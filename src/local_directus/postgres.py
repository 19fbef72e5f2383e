"""Databases for Directus on the machine's PostgreSQL, with PostGIS.

Each instance gets its own database, created fresh and dropped on stop, so
parallel test sessions never share state. The server is reached over loopback
with trust authentication, through ``psql``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_directus.errors import LocalDirectusError
from local_directus.install import cache_lock, cache_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Server:
    """Where the PostgreSQL server listens and whom to connect as."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"

    @classmethod
    def from_environment(cls) -> Server:
        """Return the server named by PGHOST/PGPORT/PGUSER, or the defaults."""
        return cls(
            os.environ.get("PGHOST", cls.host),
            int(os.environ.get("PGPORT", cls.port)),
            os.environ.get("PGUSER", cls.user),
        )


def psql(server: Server, sql: str, database: str = "postgres") -> str:
    """Run one SQL statement and return its unaligned output."""
    if shutil.which("psql") is None:
        raise LocalDirectusError("psql is missing; apt-get install postgresql-client")
    command = ["psql", "-h", server.host, "-p", str(server.port), "-U", server.user]
    command += ["-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalDirectusError(
            f"PostgreSQL at {server.host}:{server.port} refused {sql.split()[0]}: "
            f"{done.stderr.strip()}; check it runs with trust auth for {server.user}"
        )
    return done.stdout.strip()


def create_database(server: Server) -> str:
    """Create a fresh database with PostGIS and return its name."""
    ensure_postgis(server)
    name = f"directus_{secrets.token_hex(6)}"
    psql(server, f'CREATE DATABASE "{name}"')
    psql(server, "CREATE EXTENSION postgis", database=name)
    log.info("event=database_created name=%s", name)
    return name


def drop_database(server: Server, name: str) -> None:
    """Drop an instance's database, closing any connection left to it."""
    psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    log.info("event=database_dropped name=%s", name)


def ensure_postgis(server: Server) -> None:
    """Install Debian's PostGIS for the running server when it is missing."""
    major = int(psql(server, "SHOW server_version_num")) // 10000
    control = Path(f"/usr/share/postgresql/{major}/extension/postgis.control")
    if control.exists():
        return
    with cache_lock(cache_root()):  # apt refuses a second apt-get at once
        if not control.exists():
            apt_install_postgis(f"postgresql-{major}-postgis-3")


def apt_install_postgis(package: str) -> None:
    """Install PostGIS, refreshing apt's lists once if it does not know it."""
    log.info("event=postgis_install package=%s", package)
    if not apt_install(package):
        apt(["update"])
        if not apt_install(package):
            raise LocalDirectusError(f"apt-get could not install {package}")


def apt_install(package: str) -> bool:
    """Install one Debian package; return False when apt does not know it."""
    done = apt(["install", "-y", "--no-install-recommends", package], check=False)
    return done.returncode == 0


def apt(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run apt-get without questions."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "-q", *args], env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise LocalDirectusError(f"apt-get {args[0]} failed: {done.stderr[-500:]}")
    return done
