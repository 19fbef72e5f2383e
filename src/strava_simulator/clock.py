"""The simulator's clock: real time, or a simulated time that tests move."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Epoch seconds, either from the wall clock or set and advanced by hand.

    A simulated clock stands still until it is set or advanced, so tests can
    cross rate-limit windows and token expiry without waiting.
    """

    def __init__(self, simulated_at: float | None = None) -> None:
        self._simulated_at = simulated_at

    @property
    def simulated(self) -> bool:
        """True while the clock is simulated rather than real."""
        return self._simulated_at is not None

    def now(self) -> float:
        """The current time in epoch seconds."""
        if self._simulated_at is None:
            return time.time()
        return self._simulated_at

    def set(self, epoch: float) -> None:
        """Switch to simulated time, standing at `epoch`."""
        self._simulated_at = float(epoch)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, switching to simulated time if needed."""
        self._simulated_at = self.now() + seconds

    def use_real_time(self) -> None:
        """Go back to the wall clock."""
        self._simulated_at = None

    def describe(self) -> dict[str, object]:
        """The clock as JSON for the control API."""
        now = self.now()
        return {
            "mode": "simulated" if self.simulated else "real",
            "now": now,
            "iso": iso(now),
        }


def iso(epoch: float) -> str:
    """An ISO 8601 UTC string with a `Z`, as Strava writes dates."""
    moment = datetime.fromtimestamp(int(epoch), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float:
    """Epoch seconds from a number or an ISO 8601 string."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
