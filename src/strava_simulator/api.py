"""The Strava API v3 endpoints the simulator serves, under a prefix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from strava_simulator import generator, world
from strava_simulator.errors import (
    StravaError,
    bad_request,
    invalid_token,
    missing_scope,
    missing_token,
    not_found,
    rate_limited,
)
from strava_simulator.oauth import AccessToken
from strava_simulator.streams import STREAM_TYPES, render_streams

if TYPE_CHECKING:
    from strava_simulator.app import Simulator
    from strava_simulator.generator import ActivitySpec

Handler = Callable[[Request, AccessToken], Awaitable[Response]]
RESOLUTIONS = {"low": 100, "medium": 1000, "high": 10_000}
READ = frozenset({"activity:read", "activity:read_all"})


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, count against the rate limits, add the limit headers."""

    @wraps(handler)
    async def run(request: Request) -> Response:
        sim: Simulator = request.app.state.sim
        try:
            token = authenticate(sim, request)
        except StravaError as error:
            return error.response()
        now = sim.clock.now()
        allowed = sim.limiter.count(token.client_id, now, read=request.method == "GET")
        headers = sim.limiter.headers(token.client_id, now)
        if not allowed:
            return rate_limited().response(headers)
        try:
            response = await handler(request, token)
        except StravaError as error:
            return error.response(headers)
        response.headers.update(headers)
        return response

    return run


def authenticate(sim: Simulator, request: Request) -> AccessToken:
    """The live token from the Authorization header; query tokens are refused."""
    if "access_token" in request.query_params:
        raise invalid_token()
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise missing_token()
    found = sim.tokens.lookup(raw.strip())
    if found is None:
        raise invalid_token()
    return found


@endpoint
async def athlete(request: Request, token: AccessToken) -> Response:
    """GET /athlete: the authenticated athlete."""
    sim: Simulator = request.app.state.sim
    return JSONResponse(sim.athlete_body(token.athlete_id))


@endpoint
async def activities(request: Request, token: AccessToken) -> Response:
    """GET /athlete/activities: summaries newest first, paged."""
    sim: Simulator = request.app.state.sim
    if not token.scopes & READ:
        raise missing_scope("activity:read")
    before = _number(request, "before")
    after = _number(request, "after")
    page = max(1, int(_number(request, "page") or 1))
    per_page = min(200, max(1, int(_number(request, "per_page") or 30)))
    private = "activity:read_all" in token.scopes
    found = sim.world.listing(token.athlete_id, before, after, private)
    chosen = found[(page - 1) * per_page : page * per_page]
    return JSONResponse([generator.summary(spec) for spec in chosen])


def _number(request: Request, name: str) -> float | None:
    """A numeric query parameter, or None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError as error:
        raise bad_request("Application", name) from error


def visible(sim: Simulator, token: AccessToken, activity_id: int) -> ActivitySpec:
    """The activity if this token may read it, else a 404 (or 401 for scope)."""
    spec = sim.world.activities.get(activity_id)
    if spec is None:
        raise not_found()
    if spec.athlete_id != token.athlete_id:
        if spec.private:
            raise not_found()
        return spec
    if not token.scopes & READ:
        raise missing_scope("activity:read")
    if spec.private and "activity:read_all" not in token.scopes:
        raise not_found()
    return spec


@endpoint
async def activity(request: Request, token: AccessToken) -> Response:
    """GET /activities/{id}: the DetailedActivity."""
    sim: Simulator = request.app.state.sim
    spec = visible(sim, token, request.path_params["id"])
    owner = sim.world.athletes[spec.athlete_id]
    own = spec.athlete_id == token.athlete_id and "activity:read_all" in token.scopes
    return JSONResponse(generator.detail(spec, owner, owner_private=own))


@endpoint
async def activity_streams(request: Request, token: AccessToken) -> Response:
    """GET /activities/{id}/streams: only the streams the activity has."""
    sim: Simulator = request.app.state.sim
    spec = visible(sim, token, request.path_params["id"])
    wanted = [k for k in request.query_params.get("keys", "").split(",") if k]
    series = request.query_params.get("series_type", "distance")
    resolution = request.query_params.get("resolution")
    chosen = pick_streams(spec, wanted, series, resolution)
    if request.query_params.get("key_by_type", "").lower() == "true":
        return JSONResponse(chosen)
    return JSONResponse([{"type": key, **value} for key, value in chosen.items()])


def pick_streams(
    spec: ActivitySpec, wanted: list[str], series: str, resolution: str | None
) -> dict[str, dict[str, Any]]:
    """Requested streams the activity has, plus `distance` as Strava adds it.

    Manual activities have no streams, so the answer is empty for them.
    """
    available = _available(spec)
    keys = [key for key in STREAM_TYPES if key in wanted or key == "distance"]
    chosen = {}
    for key in keys:
        data = available.get(key)
        if data is None:
            continue
        size = len(data)
        limit = RESOLUTIONS.get(resolution or "", size)
        chosen[key] = {
            "data": _thin(data, limit),
            "series_type": series,
            "original_size": size,
            "resolution": resolution if resolution in RESOLUTIONS else "high",
        }
    return chosen


def _available(spec: ActivitySpec) -> dict[str, list[Any]]:
    """Every stream of the activity, or none."""
    if spec.kind == "recorded":
        recorded = world.recorded_streams()
        return {key: value["data"] for key, value in recorded.items()}
    plan = spec.track()
    return render_streams(plan) if plan is not None else {}


def _thin(data: list[Any], limit: int) -> list[Any]:
    """At most `limit` evenly spaced samples, ends kept."""
    if len(data) <= limit:
        return data
    step = (len(data) - 1) / (limit - 1)
    return [data[round(i * step)] for i in range(limit)]


@endpoint
async def activity_laps(request: Request, token: AccessToken) -> Response:
    """GET /activities/{id}/laps."""
    sim: Simulator = request.app.state.sim
    spec = visible(sim, token, request.path_params["id"])
    if spec.recorded is not None:
        return JSONResponse(spec.recorded.get("laps", []))
    plan = spec.track()
    return JSONResponse(generator.laps(spec, plan) if plan is not None else [])


@endpoint
async def activity_photos(request: Request, token: AccessToken) -> Response:
    """GET /activities/{id}/photos: links in the requested size."""
    sim: Simulator = request.app.state.sim
    spec = visible(sim, token, request.path_params["id"])
    size = request.query_params.get("size", "")
    return JSONResponse(generator.photos(spec, int(size) if size.isdigit() else 100))


def routes(prefix: str) -> list[Route]:
    """The API routes under `prefix`."""
    return [
        Route(f"{prefix}/athlete", athlete, methods=["GET"]),
        Route(f"{prefix}/athlete/activities", activities, methods=["GET"]),
        Route(f"{prefix}/activities/{{id:int}}", activity, methods=["GET"]),
        Route(
            f"{prefix}/activities/{{id:int}}/streams", activity_streams, methods=["GET"]
        ),
        Route(f"{prefix}/activities/{{id:int}}/laps", activity_laps, methods=["GET"]),
        Route(
            f"{prefix}/activities/{{id:int}}/photos", activity_photos, methods=["GET"]
        ),
    ]
