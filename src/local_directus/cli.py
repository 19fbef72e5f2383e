"""The ``local-directus`` command: install, start, stop and inspect instances."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import click

from local_directus import demo
from local_directus.errors import LocalDirectusError
from local_directus.install import install
from local_directus.instance import (
    FLAVOURS,
    INSTANCE_FILE,
    LOG_FILE,
    Flavour,
    Instance,
    is_healthy,
    is_running,
    start,
    stop,
)

T = TypeVar("T")

DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder holding the instance's .env, log, data and instance.json.",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log each step.")
def main(verbose: bool) -> None:
    """Run a real local Directus for development, tests and the demo."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    # httpx logs every readiness poll at INFO; keep -v to our own steps.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@main.command("install")
def install_command() -> None:
    """Install Node 22 and the pinned Directus into the cache."""
    started = time.monotonic()
    installation = guarded(install)
    click.echo(f"directus {installation.directus_version} in {installation.directory}")
    click.echo(f"node {installation.node.version} at {installation.node.binary}")
    click.echo(f"took {time.monotonic() - started:.1f} s")


@main.command("start")
@click.option("--flavour", type=click.Choice(FLAVOURS), required=True)
@DIR_OPTION
@click.option("--port", type=int, help="Loopback port; a free one by default.")
def start_command(flavour: str, directory: Path, port: int | None) -> None:
    """Start Directus in the background and say how to reach it."""
    started = time.monotonic()
    chosen = cast(Flavour, flavour)
    instance = guarded(lambda: start(chosen, directory, port))
    folder = Path(instance.directory)
    click.echo(f"Directus {instance.flavour} running at {instance.url}")
    click.echo(f"admin email: {instance.admin_email}")
    click.echo(f"admin password and token: {folder / INSTANCE_FILE} (mode 0600)")
    click.echo(f"log: {folder / LOG_FILE}; pid {instance.pid}")
    click.echo(f"started in {time.monotonic() - started:.1f} s; stop with:")
    click.echo(f"  local-directus stop --dir {folder}")


@main.command("stop")
@DIR_OPTION
def stop_command(directory: Path) -> None:
    """Stop the instance recorded in a folder and drop its database."""
    guarded(lambda: stop(directory))
    click.echo(f"stopped the instance in {directory}")


@main.command("status")
@DIR_OPTION
def status_command(directory: Path) -> None:
    """Say whether the instance in a folder is running and healthy."""
    instance = guarded(lambda: Instance.load(directory))
    alive = is_running(instance)
    healthy = alive and is_healthy(instance.url, instance.admin_token)
    state = "healthy" if healthy else "running, not healthy" if alive else "stopped"
    click.echo(f"{instance.flavour} at {instance.url} (pid {instance.pid}): {state}")
    if not healthy:
        raise SystemExit(1)


@main.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Folder for the demo's Directus, simulator log and service data "
    "(emptied at each start).",
)
@click.option("--port", default=8700, show_default=True, help="The service's port.")
def demo_command(directory: Path, port: int) -> None:
    """Run the demo: local Directus, simulated Strava and the service."""
    logging.getLogger().setLevel(logging.INFO)
    guarded(lambda: demo.run(directory, port))


def guarded(action: Callable[[], T]) -> T:
    """Run an action, turning our errors into a clean message and exit 1."""
    try:
        return action()
    except LocalDirectusError as error:
        raise click.ClickException(str(error)) from error
