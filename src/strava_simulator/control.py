"""A typed client for the simulator's control API (/_sim)."""

from __future__ import annotations

import time
from typing import Any

import httpx

Json = dict[str, Any]


class SimulatorControl:
    """Drive a running simulator: data, clock, limits, faults, counters."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/_sim", timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SimulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: Json | None = None, **query: Any
    ) -> Any:
        """One control request; raises httpx.HTTPStatusError on failure."""
        params = {key: value for key, value in query.items() if value is not None}
        answer = self._http.request(method, path, json=body, params=params)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def state(self) -> Json:
        """URLs, credentials, athletes and the clock."""
        return dict(self._call("GET", "/state"))

    def reset(self) -> None:
        """Return to the initial state."""
        self._call("POST", "/reset")

    def seed(
        self, seed: int, athletes: int = 1, activities: int = 50, **options: Any
    ) -> Json:
        """Replace the world; options: days, specials, day_long, recorded."""
        body = {"seed": seed, "athletes": athletes, "activities": activities}
        return dict(self._call("POST", "/seed", dict(body, options=options)))

    def activities(self, athlete_id: int | None = None) -> list[Json]:
        """Cheap facts (id, tags, visibility, points...) newest first."""
        return list(self._call("GET", "/activities", athlete_id=athlete_id))

    def create_activity(self, athlete_id: int | None = None, **fields: Any) -> Json:
        """A new activity (sends a create event); fields: name, sport_type..."""
        body = dict(fields, athlete_id=athlete_id)
        return dict(self._call("POST", "/activities", body))

    def update_activity(self, activity_id: int, **fields: Any) -> Json:
        """Edit name, sport_type, private/visibility, description, private_note."""
        return dict(self._call("PATCH", f"/activities/{activity_id}", fields))

    def delete_activity(self, activity_id: int) -> None:
        """Delete an activity (sends a delete event)."""
        self._call("DELETE", f"/activities/{activity_id}")

    def deauthorize(self, athlete_id: int) -> None:
        """The athlete revokes the app (sends a deauthorization event)."""
        self._call("POST", f"/athletes/{athlete_id}/deauthorize")

    def tokens(
        self, athlete_id: int | None = None, scope: str = "read,activity:read_all"
    ) -> Json:
        """A token pair without the consent page."""
        return dict(
            self._call("POST", "/tokens", {"athlete_id": athlete_id, "scope": scope})
        )

    def clock(self) -> Json:
        """The clock's mode and time."""
        return dict(self._call("GET", "/clock"))

    def set_clock(self, now: float | str) -> Json:
        """Simulated time at `now` (epoch seconds or ISO 8601)."""
        return dict(self._call("POST", "/clock", {"now": now}))

    def advance_clock(self, seconds: float) -> Json:
        """Move simulated time forward."""
        return dict(self._call("POST", "/clock/advance", {"seconds": seconds}))

    def real_clock(self) -> Json:
        """Back to wall-clock time."""
        return dict(self._call("POST", "/clock", {"real": True}))

    def rate_limits(self) -> Json:
        """Limits and current usage."""
        return dict(self._call("GET", "/rate_limits"))

    def set_rate_limits(self, reset: bool = False, **limits: int) -> Json:
        """Change overall_15min, overall_daily, read_15min, read_daily."""
        return dict(
            self._call("POST", "/rate_limits", {"limits": limits, "reset": reset})
        )

    def add_fault(
        self,
        kind: str,
        count: int | None = None,
        probability: float | None = None,
        path: str | None = None,
        latency_ms: int = 0,
        status: int = 500,
        seed: int = 0,
    ) -> Json:
        """A fault (latency, error, rate_limit, drop) for the next `count`
        matching requests or a seeded `probability` share of them."""
        body = {
            "kind": kind, "count": count, "probability": probability, "path": path,
            "latency_ms": latency_ms, "status": status, "seed": seed,
        }  # fmt: skip
        return dict(self._call("POST", "/faults", body))

    def faults(self) -> list[Json]:
        """The active fault rules with how often each fired."""
        return list(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/faults")

    def counters(self) -> Json:
        """Requests per "METHOD /route" and webhook delivery totals."""
        return dict(self._call("GET", "/counters"))

    def deliveries(self) -> list[Json]:
        """Every webhook event with its attempts (status, latency, error)."""
        return list(self._call("GET", "/webhooks/deliveries"))

    def settings(self, **values: Any) -> Json:
        """Change runtime settings, e.g. rotate_refresh_tokens=False."""
        return dict(self._call("POST", "/settings", values))

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[Json]:
        """Wait until `count` events are finished (delivered or given up)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries()
            done = [d for d in found if d["finished"]]
            if len(done) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(done)} of {count} webhook deliveries finished"
                )
            time.sleep(0.02)
