"""The control API under /_sim: drive the simulator from tests and demos."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from strava_simulator.clock import parse_time
from strava_simulator.generator import SeedOptions
from strava_simulator.oauth import requested_scopes, token_body
from strava_simulator.ratelimit import Limits

if TYPE_CHECKING:
    from strava_simulator.app import Simulator

Body = dict[str, Any]
Handler = Callable[["Simulator", Request, Body], Awaitable[Any]]
SETTINGS = (
    "rotate_refresh_tokens",
    "webhook_retry_delay",
    "webhook_timeout",
    "webhook_attempts",
    "verify_timeout",
    "access_token_lifetime",
    "code_lifetime",
)


class ControlError(Exception):
    """A bad control request; the message says what to send instead."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def control(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Parse a JSON body, call the handler, answer its result as JSON."""

    @wraps(handler)
    async def run(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
            result = await handler(request.app.state.sim, request, body)
        except ControlError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except (KeyError, ValueError, TypeError) as error:
            return JSONResponse({"error": f"bad request: {error!r}"}, status_code=400)
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result)

    return run


@control
async def state(sim: Simulator, request: Request, body: Body) -> Any:
    """Urls, credentials, athletes and clock."""
    athletes = [
        {
            "id": a.id,
            "firstname": a.firstname,
            "lastname": a.lastname,
            "town": a.town.name,
        }
        for a in sim.world.athletes.values()
    ]
    return {**sim.urls(), "athletes": athletes, "clock": sim.clock.describe()}


@control
async def reset(sim: Simulator, request: Request, body: Body) -> Any:
    """Back to the initial state."""
    sim.reset()
    return {"ok": True}


@control
async def seed(sim: Simulator, request: Request, body: Body) -> Any:
    """A fresh world from a seed."""
    options = SeedOptions(**body.get("options", {}))
    sim.seed(int(body.get("seed", 1)), int(body.get("athletes", 1)),
             int(body.get("activities", 50)), options)  # fmt: skip
    return {
        "athletes": list(sim.world.athletes),
        "activities": len(sim.world.activities),
    }


@control
async def activities(sim: Simulator, request: Request, body: Body) -> Any:
    """Cheap facts about the activities, newest first."""
    raw = request.query_params.get("athlete_id")
    return sim.world.catalogue(int(raw) if raw else None)


def _activity_id(sim: Simulator, request: Request) -> int:
    """The path's activity id, which must exist."""
    activity_id = int(request.path_params["id"])
    if activity_id not in sim.world.activities:
        raise ControlError(f"no activity {activity_id}", 404)
    return activity_id


@control
async def create_activity(sim: Simulator, request: Request, body: Body) -> Any:
    """A new activity for an athlete; announced as a create event."""
    athlete_id = int(body.get("athlete_id") or next(iter(sim.world.athletes)))
    if athlete_id not in sim.world.athletes:
        raise ControlError(f"no athlete {athlete_id}", 404)
    spec = sim.world.create(athlete_id, body, sim.clock.now())
    sim.announce(spec, "create", None)
    return {"id": spec.id, "athlete_id": spec.athlete_id, "start": spec.start}


@control
async def update_activity(sim: Simulator, request: Request, body: Body) -> Any:
    """Edit an activity; title, type and privacy changes are announced."""
    activity_id = _activity_id(sim, request)
    change = sim.world.update(activity_id, body)
    sim.announce(sim.world.activities[activity_id], "update", change)
    return {"id": activity_id, "updates": change.updates}


@control
async def delete_activity(sim: Simulator, request: Request, body: Body) -> Any:
    """Delete an activity; announced as a delete event."""
    spec = sim.world.delete(_activity_id(sim, request))
    sim.announce(spec, "delete", None)
    return {"id": spec.id}


@control
async def deauthorize(sim: Simulator, request: Request, body: Body) -> Any:
    """The athlete revokes the app on strava.com."""
    athlete_id = int(request.path_params["id"])
    sim.deauthorize(sim.config.client_id, athlete_id)
    return {"athlete_id": athlete_id}


@control
async def tokens(sim: Simulator, request: Request, body: Body) -> Any:
    """Skip the consent page: a token pair for an athlete and scopes."""
    athlete_id = int(body.get("athlete_id") or next(iter(sim.world.athletes)))
    scopes = frozenset(
        requested_scopes(str(body.get("scope", "read,activity:read_all")))
    )
    access, refresh = sim.tokens.issue(sim.config.client_id, athlete_id, scopes)
    return {**token_body(sim, access, refresh), "athlete_id": athlete_id}


@control
async def clock(sim: Simulator, request: Request, body: Body) -> Any:
    """Read the clock, or set it (`now`) or return to real time (`real`)."""
    if body.get("real"):
        sim.clock.use_real_time()
    elif "now" in body:
        sim.clock.set(parse_time(body["now"]))
    return sim.clock.describe()


@control
async def advance(sim: Simulator, request: Request, body: Body) -> Any:
    """Move the simulated clock forward by `seconds`."""
    sim.clock.advance(float(body["seconds"]))
    return sim.clock.describe()


@control
async def rate_limits(sim: Simulator, request: Request, body: Body) -> Any:
    """Read limits and usage, or change limits (and reset usage with `reset`)."""
    if body:
        current = vars(sim.limiter.limits)
        sim.limiter.limits = Limits(**{**current, **body.get("limits", {})})
        if body.get("reset"):
            sim.limiter.reset()
    return sim.limiter.describe(sim.config.client_id, sim.clock.now())


@control
async def faults(sim: Simulator, request: Request, body: Body) -> Any:
    """List, add (POST) or clear (DELETE) fault rules."""
    if request.method == "DELETE":
        sim.faults.clear()
    elif request.method == "POST":
        default = sim.config.api_prefix.rstrip("/") + "/*"
        return sim.faults.add(body, default).describe()
    return [rule.describe() for rule in sim.faults.rules]


@control
async def counters(sim: Simulator, request: Request, body: Body) -> Any:
    """Requests per endpoint and webhook delivery totals."""
    requests = dict(sim.gate.counters) if sim.gate else {}
    return {"requests": requests, "webhooks": sim.hub.counts()}


@control
async def deliveries(sim: Simulator, request: Request, body: Body) -> Any:
    """Every webhook event with its attempts."""
    return sim.hub.report()


@control
async def settings(sim: Simulator, request: Request, body: Body) -> Any:
    """Change runtime settings such as refresh-token rotation."""
    for key, value in body.items():
        if key not in (*SETTINGS, "callback_domains"):
            raise ControlError(f"unknown setting {key!r}; known: {SETTINGS}")
        setattr(sim.config, key, tuple(value) if key == "callback_domains" else value)
    return {key: getattr(sim.config, key) for key in (*SETTINGS, "callback_domains")}


routes = [
    Route("/_sim/state", state, methods=["GET"]),
    Route("/_sim/reset", reset, methods=["POST"]),
    Route("/_sim/seed", seed, methods=["POST"]),
    Route("/_sim/activities", activities, methods=["GET"]),
    Route("/_sim/activities", create_activity, methods=["POST"]),
    Route("/_sim/activities/{id:int}", update_activity, methods=["PATCH"]),
    Route("/_sim/activities/{id:int}", delete_activity, methods=["DELETE"]),
    Route("/_sim/athletes/{id:int}/deauthorize", deauthorize, methods=["POST"]),
    Route("/_sim/tokens", tokens, methods=["POST"]),
    Route("/_sim/clock", clock, methods=["GET", "POST"]),
    Route("/_sim/clock/advance", advance, methods=["POST"]),
    Route("/_sim/rate_limits", rate_limits, methods=["GET", "POST"]),
    Route("/_sim/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sim/counters", counters, methods=["GET"]),
    Route("/_sim/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/_sim/settings", settings, methods=["GET", "POST"]),
]
