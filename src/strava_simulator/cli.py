"""`strava-simulator serve`: run a simulator as its own process."""

from __future__ import annotations

import json
import logging
import sys

import click

from strava_simulator.app import Simulator
from strava_simulator.config import SimulatorConfig
from strava_simulator.generator import SeedOptions
from strava_simulator.server import serve as serve_forever


@click.group()
def main() -> None:
    """A simulated Strava for tests, benchmarks and demos."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--seed", default=1, show_default=True)
@click.option("--athletes", default=1, show_default=True)
@click.option("--activities", default=50, show_default=True, help="Per athlete.")
@click.option("--sim-clock", is_flag=True, help="Simulated clock, moved via /_sim.")
@click.option("--client-id", default=12345, show_default=True)
@click.option("--client-secret", default=None, help="Default: random, printed.")
@click.option("--callback-domain", multiple=True, help="Allowed redirect host.")
@click.option("--api-prefix", default="/api/v3", show_default=True)
@click.option("--no-rotate", is_flag=True, help="Keep refresh tokens on refresh.")
@click.option("--recorded", is_flag=True, help="Add the recorded activity.")
def serve(
    host: str, port: int, seed: int, athletes: int, activities: int, sim_clock: bool,
    client_id: int, client_secret: str | None, callback_domain: tuple[str, ...],
    api_prefix: str, no_rotate: bool, recorded: bool,
) -> None:  # fmt: skip
    """Serve until interrupted; prints one JSON line with URLs and credentials."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    config = SimulatorConfig(
        seed=seed, athletes=athletes, activities=activities, host=host, port=port,
        sim_clock=sim_clock, client_id=client_id, callback_domains=callback_domain,
        api_prefix=api_prefix, rotate_refresh_tokens=not no_rotate,
        seed_options=SeedOptions(recorded=recorded),
    )  # fmt: skip
    if client_secret:
        config.client_secret = client_secret
    serve_forever(config, _announce)


def _announce(sim: Simulator) -> None:
    """Print where the simulator listens, for scripts to read."""
    sys.stdout.write(json.dumps(sim.urls()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
