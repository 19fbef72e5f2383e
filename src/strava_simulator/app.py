"""The simulator's state and the Starlette application serving it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from strava_simulator import api, control_api, oauth, webhooks
from strava_simulator.clock import Clock, iso
from strava_simulator.config import SimulatorConfig
from strava_simulator.faults import Faults, Gate
from strava_simulator.generator import ActivitySpec, SeedOptions
from strava_simulator.oauth import TokenStore
from strava_simulator.ratelimit import RateLimiter
from strava_simulator.world import Change, World

if TYPE_CHECKING:
    import uvicorn


class Simulator:
    """Everything one simulated Strava knows, and the changes it announces."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        start = self.config.clock_start
        self.clock = Clock(
            (start or time.time()) if self.config.sim_clock or start else None
        )
        self.world = World()
        self.tokens = TokenStore(self)
        self.limiter = RateLimiter(replace(self.config.limits))
        self.faults = Faults()
        self.hub = webhooks.Hub(self)
        self.gate: Gate | None = None
        self.server: uvicorn.Server | None = None
        self.base_url = ""
        self.seed(self.config.seed, self.config.athletes, self.config.activities)

    def seed(
        self,
        seed: int,
        athletes: int,
        activities: int,
        options: SeedOptions | None = None,
    ) -> None:
        """Replace the world and forget every token, event and counter."""
        chosen = options or self.config.seed_options
        self.config.seed, self.config.athletes = seed, athletes
        self.config.activities, self.config.seed_options = activities, chosen
        self.world.populate(seed, athletes, activities, self.clock.now(), chosen)
        self.tokens = TokenStore(self)
        self.limiter.reset()
        self.faults.clear()
        self.hub.reset()
        if self.gate is not None:
            self.gate.counters.clear()

    def reset(self) -> None:
        """Back to the state the simulator started in (clock and limits too)."""
        self.limiter.limits = replace(self.config.limits)
        start = self.config.clock_start
        if self.config.sim_clock or start:
            self.clock.set(start or time.time())
        else:
            self.clock.use_real_time()
        self.seed(self.config.seed, self.config.athletes, self.config.activities)

    def athlete_body(self, athlete_id: int) -> dict[str, Any]:
        """The DetailedAthlete, shaped like Strava's GET /athlete."""
        athlete = self.world.athletes[athlete_id]
        picture = f"https://example.invalid/pictures/athletes/{athlete.id}"
        return {
            "id": athlete.id,
            "username": athlete.username,
            "resource_state": 3,
            "firstname": athlete.firstname,
            "lastname": athlete.lastname,
            "bio": f"Out and about around {athlete.town.name}.",
            "city": athlete.town.name,
            "state": athlete.town.state,
            "country": athlete.town.country,
            "sex": athlete.sex,
            "premium": True,
            "summit": True,
            "created_at": iso(athlete.created_at),
            "updated_at": iso(athlete.created_at + 86_400 * 400),
            "badge_type_id": 1,
            "weight": 70.0,
            "profile_medium": f"{picture}/medium.jpg",
            "profile": f"{picture}/large.jpg",
            "friend": None,
            "follower": None,
            "blocked": False,
            "can_follow": True,
            "follower_count": 12,
            "friend_count": 15,
            "mutual_friend_count": 0,
            "athlete_type": 1,
            "date_preference": "%m/%d/%Y",
            "measurement_preference": "meters",
            "clubs": [],
            "postable_clubs_count": 0,
            "ftp": 240,
            "bikes": [dict(gear) for gear in athlete.bikes],
            "shoes": [dict(gear) for gear in athlete.shoes],
        }

    def deauthorize(self, client_id: int, athlete_id: int) -> None:
        """Revoke the athlete's tokens and announce it, as Strava does."""
        if not self.tokens.revoke_athlete(client_id, athlete_id):
            return
        self.hub.publish(
            {
                "aspect_type": "update",
                "event_time": int(self.clock.now()),
                "object_id": athlete_id,
                "object_type": "athlete",
                "owner_id": athlete_id,
                "updates": {"authorized": "false"},
            }
        )

    def announce(self, spec: ActivitySpec, aspect: str, change: Change | None) -> None:
        """Publish an activity event if the athlete's grant lets the app see it.

        With `activity:read` but not `activity:read_all`, Only Me activities are
        invisible: going private reads as a delete and going public as a create,
        as Strava's webhook documentation describes.
        """
        scopes = self.tokens.authorized.get((self.config.client_id, spec.athlete_id))
        if scopes is None or not scopes & api.READ:
            return
        updates = change.updates if change else {}
        if "activity:read_all" not in scopes:
            if change is not None and change.privacy is not None:
                aspect = "delete" if change.privacy == "private" else "create"
                updates = {}
            elif spec.private:
                return
        if aspect == "update" and not updates:
            return
        self.hub.publish(
            {
                "aspect_type": aspect,
                "event_time": int(self.clock.now()),
                "object_id": spec.id,
                "object_type": "activity",
                "owner_id": spec.athlete_id,
                "updates": updates,
            }
        )

    def urls(self) -> dict[str, Any]:
        """Where everything is, with the app credentials."""
        return {
            "base_url": self.base_url,
            "api_url": self.base_url + self.config.api_prefix,
            "oauth_url": self.base_url + "/oauth",
            "control_url": self.base_url + "/_sim",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
        }


async def _not_found(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in Strava's shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "Record Not Found" if status == 404 else "Bad Request"
    body = {
        "message": message,
        "errors": [{"resource": "Path", "field": "", "code": "invalid"}],
    }
    return JSONResponse(body, status_code=status)


def build_app(sim: Simulator) -> Gate:
    """The ASGI application: routes behind the counting and fault gate."""
    prefix = sim.config.api_prefix.rstrip("/")
    routes: list[BaseRoute] = [*oauth.routes, *api.routes(prefix)]
    routes += webhooks.routes(prefix)
    routes += control_api.routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sim.hub.start()
        yield
        await sim.hub.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.sim = sim
    counted = [route for route in routes if isinstance(route, Route)]
    sim.gate = Gate(app, sim, counted)
    return sim.gate
