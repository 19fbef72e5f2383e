"""Run the local-directus command with ``python -m local_directus``."""

from local_directus.cli import main

main()
