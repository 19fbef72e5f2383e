"""A faithful Strava simulator for tests, benchmarks and the demo.

It speaks Strava's documented OAuth, API v3 and webhook protocols over real
HTTP; see README.md in this package.
"""

from strava_simulator.app import Simulator, build_app
from strava_simulator.config import SimulatorConfig
from strava_simulator.control import SimulatorControl
from strava_simulator.generator import SeedOptions
from strava_simulator.ratelimit import Limits
from strava_simulator.server import RunningSimulator, running

__all__ = [
    "Limits",
    "RunningSimulator",
    "SeedOptions",
    "Simulator",
    "SimulatorConfig",
    "SimulatorControl",
    "build_app",
    "running",
]
