"""Install the pinned Directus from the committed lock into a shared cache.

The cache lives outside the clone (``$XDG_CACHE_HOME/directus-strava``), keyed
by the Directus version and the lock's hash, so every clone and worktree
shares one 700 MB install and a changed lock gets a fresh one. A marker file
is written last: an interrupted install has none and is redone from scratch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local_directus.errors import LocalDirectusError
from local_directus.node import Node, ensure_node, run

log = logging.getLogger(__name__)

LOCK_SOURCE = Path(__file__).parent / "npm"
NATIVE_MODULES = ("isolated-vm", "sqlite3")
MARKER = "installed.json"
# Both native modules compile from source (no prebuilt binaries offline).
NATIVE_CHECK = (
    "require('isolated-vm');new (require('sqlite3').Database)(':memory:').close();"
)


@dataclass(frozen=True)
class Installation:
    """A ready Directus install and the Node that runs it."""

    directus_version: str
    node: Node
    directory: Path

    def command(self) -> list[str]:
        """Return the command line that runs Directus's CLI."""
        # directus/cli.js first asks registry.npmjs.org for a newer release
        # (up to 8 s and a banner in the log); the API's own entry skips that.
        entry = self.directory / "node_modules/@directus/api/dist/cli/run.js"
        return [str(self.node.binary), str(entry)]


def cache_root() -> Path:
    """Return the cache folder shared by all clones of this project."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "directus-strava"


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache so parallel installs take turns."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "install.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install() -> Installation:
    """Install Node 22 and Directus into the cache unless already there."""
    cache = cache_root()
    with cache_lock(cache):
        node = ensure_node(cache)
        installation = locate(cache, node)
        if not is_installed(installation):
            install_directus(installation)
    return installation


def locate(cache: Path, node: Node) -> Installation:
    """Return where the committed lock's Directus belongs in the cache."""
    manifest = json.loads((LOCK_SOURCE / "package.json").read_text())
    version = str(manifest["dependencies"]["directus"])
    lock = (LOCK_SOURCE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()[:8]
    return Installation(version, node, cache / f"directus-{version}-{digest}")


def is_installed(installation: Installation) -> bool:
    """Tell whether a finished install for this Node sits in its folder."""
    marker = installation.directory / MARKER
    if not marker.exists():
        return False
    recorded = json.loads(marker.read_text())
    return bool(recorded.get("node") == installation.node.version)


def install_directus(installation: Installation) -> None:
    """Run npm ci from the committed lock, then build the native modules."""
    node, folder = installation.node, installation.directory
    log.info(
        "event=directus_install version=%s node=%s folder=%s",
        installation.directus_version,
        node.version,
        folder,
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(LOCK_SOURCE / name, folder / name)

    # npm skips install scripts it has not been told to trust, so the two
    # native modules are built explicitly, in parallel, for this Node.
    env = {**node.environment(), "JOBS": "max"}
    run(node.npm("ci", "--no-fund", "--no-audit"), cwd=folder, env=env)
    run(node.npm("rebuild", *NATIVE_MODULES), cwd=folder, env=env)
    check_native(installation)

    record = {"directus": installation.directus_version, "node": node.version}
    (folder / MARKER).write_text(json.dumps(record) + "\n")


def check_native(installation: Installation) -> None:
    """Fail unless isolated-vm and sqlite3 load under the install's Node."""
    done = subprocess.run(
        [str(installation.node.binary), "-e", NATIVE_CHECK],
        cwd=installation.directory,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LocalDirectusError(
            f"native modules do not load under Node {installation.node.version}; "
            f"delete {installation.directory} and install again:\n{done.stderr[-2000:]}"
        )
