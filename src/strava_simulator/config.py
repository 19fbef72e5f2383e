"""Settings of one simulator instance."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from strava_simulator.generator import SeedOptions
from strava_simulator.ratelimit import Limits


@dataclass
class SimulatorConfig:
    """Everything a simulator is started with; all have test-friendly defaults."""

    seed: int = 1
    athletes: int = 1
    activities: int = 50
    seed_options: SeedOptions = field(default_factory=SeedOptions)
    client_id: int = 12345
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    callback_domains: tuple[str, ...] = ()
    api_prefix: str = "/api/v3"
    host: str = "127.0.0.1"
    port: int = 0
    sim_clock: bool = False
    clock_start: float | None = None
    rotate_refresh_tokens: bool = True
    access_token_lifetime: int = 21_600
    same_token_margin: int = 3_600
    code_lifetime: int = 600
    limits: Limits = field(default_factory=Limits)
    verify_timeout: float = 2.0
    webhook_timeout: float = 2.0
    webhook_attempts: int = 3
    webhook_retry_delay: float = 0.2
