"""`python -m strava_simulator serve ...`."""

from strava_simulator.cli import main

main()
