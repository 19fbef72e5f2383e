"""A real local Directus 12 for development, tests and the demo.

``install()`` puts Node 22 and the pinned Directus in a shared cache;
``start()`` runs one instance (SQLite, or PostgreSQL with PostGIS) on a free
loopback port and hands back admin credentials; ``stop()`` ends it.
"""

from local_directus.errors import LocalDirectusError
from local_directus.install import Installation, install
from local_directus.instance import Flavour, Instance, running, start, stop

__all__ = [
    "Flavour",
    "Installation",
    "Instance",
    "LocalDirectusError",
    "install",
    "running",
    "start",
    "stop",
]
