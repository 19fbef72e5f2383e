"""Run the webhook callback, worker and scheduler as one process (for crash tests).

Reads the service's settings from the environment, like the real service, and
serves on SERVICE_HOST:SERVICE_PORT until killed.
"""

from __future__ import annotations

import logging

import uvicorn

from directus_strava import settings
from directus_strava.service import Service
from webhook_rig import callback_app


def main() -> None:
    """Serve until the process is stopped."""
    logging.basicConfig(level=logging.WARNING)
    service = Service.build(settings.load())
    app = callback_app(service)
    uvicorn.run(
        app,
        host=service.settings.service_host,
        port=service.settings.service_port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
