"""Strava's OAuth 2 endpoints: consent page, token exchange, revocation."""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from strava_simulator.errors import StravaError, bad_request, invalid_token

if TYPE_CHECKING:
    from strava_simulator.app import Simulator

SCOPES = (
    "read",
    "read_all",
    "profile:read_all",
    "profile:write",
    "activity:read",
    "activity:read_all",
    "activity:write",
)
SCOPE_LABELS = {
    "read": "View data about your public profile (always granted)",
    "read_all": "View data about your private routes, segments and events",
    "profile:read_all": "View your complete Strava profile",
    "profile:write": "Update your weight and FTP, star segments",
    "activity:read": "View data about your activities",
    "activity:read_all": "View data about your private activities",
    "activity:write": "Upload and edit your activities",
}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


@dataclass
class Code:
    """An authorization code waiting for its single exchange."""

    client_id: int
    athlete_id: int
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class AccessToken:
    """A bearer token and what it allows."""

    token: str
    client_id: int
    athlete_id: int
    scopes: frozenset[str]
    expires_at: int


@dataclass
class RefreshToken:
    """A refresh token and the latest access token it produced."""

    token: str
    client_id: int
    athlete_id: int
    scopes: frozenset[str]
    access: str


class TokenStore:
    """Codes and tokens of every athlete who authorized the application."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.codes: dict[str, Code] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.authorized: dict[tuple[int, int], frozenset[str]] = {}

    def issue_code(
        self, client_id: int, athlete_id: int, scopes: tuple[str, ...]
    ) -> str:
        """A fresh single-use code."""
        code = secrets.token_hex(20)
        expires = self._sim.clock.now() + self._sim.config.code_lifetime
        self.codes[code] = Code(client_id, athlete_id, scopes, expires)
        return code

    def exchange(self, client_id: int, code: str) -> tuple[AccessToken, RefreshToken]:
        """Tokens for a code; the code dies whatever the outcome."""
        grant = self.codes.pop(code, None)
        if grant is None or grant.client_id != client_id:
            raise bad_request("RequestToken", "code")
        if grant.expires_at < self._sim.clock.now():
            raise bad_request("RequestToken", "code")
        scopes = frozenset(grant.scopes)
        self.authorized[(client_id, grant.athlete_id)] = scopes
        return self.issue(client_id, grant.athlete_id, scopes)

    def issue(
        self, client_id: int, athlete_id: int, scopes: frozenset[str]
    ) -> tuple[AccessToken, RefreshToken]:
        """A new access and refresh token pair."""
        access = self._new_access(client_id, athlete_id, scopes)
        refresh = RefreshToken(
            secrets.token_hex(20), client_id, athlete_id, scopes, access.token
        )
        self.refresh[refresh.token] = refresh
        self.authorized[(client_id, athlete_id)] = scopes
        return access, refresh

    def _new_access(
        self, client_id: int, athlete_id: int, scopes: frozenset[str]
    ) -> AccessToken:
        """A new access token living the configured lifetime."""
        expires = int(self._sim.clock.now()) + self._sim.config.access_token_lifetime
        token = AccessToken(
            secrets.token_hex(20), client_id, athlete_id, scopes, expires
        )
        self.access[token.token] = token
        return token

    def renew(self, client_id: int, token: str) -> tuple[AccessToken, RefreshToken]:
        """Strava's refresh: same access token while it has over an hour left."""
        old = self.refresh.get(token)
        if old is None or old.client_id != client_id:
            raise bad_request("RefreshToken", "refresh_token")
        access = self.access.get(old.access)
        margin = self._sim.clock.now() + self._sim.config.same_token_margin
        if access is None or access.expires_at <= margin:
            access = self._new_access(client_id, old.athlete_id, old.scopes)
        if not self._sim.config.rotate_refresh_tokens:
            old.access = access.token
            return access, old
        del self.refresh[token]
        new = RefreshToken(
            secrets.token_hex(20), client_id, old.athlete_id, old.scopes, access.token
        )
        self.refresh[new.token] = new
        return access, new

    def lookup(self, token: str) -> AccessToken | None:
        """The live access token `token`, or None."""
        found = self.access.get(token)
        if found is None or found.expires_at <= self._sim.clock.now():
            return None
        return found

    def revoke_athlete(self, client_id: int, athlete_id: int) -> bool:
        """Drop every token of the athlete for the app; True if any existed."""
        existed = self.authorized.pop((client_id, athlete_id), None) is not None
        for store in (self.access, self.refresh):
            doomed = [
                key
                for key, value in store.items()
                if (value.client_id, value.athlete_id) == (client_id, athlete_id)
            ]
            for key in doomed:
                del store[key]
        return existed


async def params(request: Request) -> dict[str, str]:
    """Query, form or JSON parameters merged, body winning."""
    merged = dict(request.query_params)
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = json.loads(await request.body() or b"{}")
        merged.update({key: str(value) for key, value in body.items()})
    elif kind:
        form = await request.form()
        merged.update({key: str(value) for key, value in form.items()})
    return merged


def check_client(sim: Simulator, values: dict[str, str], secret: bool) -> int:
    """The client id, if it (and its secret when asked) match the app."""
    client_id = values.get("client_id", "")
    if client_id != str(sim.config.client_id):
        raise bad_request("Application", "client_id")
    given = values.get("client_secret", "").encode()
    if secret and not secrets.compare_digest(given, sim.config.client_secret.encode()):
        raise bad_request("Application", "client_secret")
    return int(client_id)


def check_redirect(sim: Simulator, redirect_uri: str) -> None:
    """Refuse a redirect outside the callback domain and loopback."""
    parts = urlsplit(redirect_uri)
    host = (parts.hostname or "").lower()
    allowed = (*LOOPBACK_HOSTS, *sim.config.callback_domains)
    if parts.scheme not in ("http", "https") or not any(
        host == domain or host.endswith("." + domain) for domain in allowed
    ):
        raise bad_request("Application", "redirect_uri")


def requested_scopes(text: str) -> tuple[str, ...]:
    """The scopes asked for, `read` first and always present."""
    asked = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    if any(scope not in SCOPES for scope in asked):
        raise bad_request("Authorize", "scope")
    return tuple(dict.fromkeys(["read", *asked]))


async def authorize(request: Request) -> Response:
    """GET /oauth/authorize: the consent page."""
    sim: Simulator = request.app.state.sim
    values = dict(request.query_params)
    try:
        check_client(sim, values, secret=False)
        check_redirect(sim, values.get("redirect_uri", ""))
        if values.get("response_type") != "code":
            raise bad_request("Authorize", "response_type")
        scopes = requested_scopes(values.get("scope", "read"))
    except StravaError as error:
        return error.response()
    return HTMLResponse(consent_page(sim, values, scopes))


def consent_page(
    sim: Simulator, values: dict[str, str], scopes: tuple[str, ...]
) -> str:
    """The HTML form: athlete picker, one box per scope, two buttons."""
    e = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{e(key)}" value="{e(values.get(key, ""))}">'
        for key in ("client_id", "redirect_uri", "response_type", "state")
    )
    asked = e(",".join(scopes))
    hidden += f'<input type="hidden" name="requested_scope" value="{asked}">'
    hidden += '<input type="hidden" name="scope" value="read">'
    options = "".join(
        f'<option value="{athlete.id}">{e(athlete.firstname)} {e(athlete.lastname)}'
        f" ({athlete.id})</option>"
        for athlete in sim.world.athletes.values()
    )
    boxes = "".join(_scope_box(scope) for scope in scopes)
    return CONSENT_TEMPLATE.format(
        app=e(str(sim.config.client_id)), hidden=hidden, options=options, boxes=boxes
    )


def _scope_box(scope: str) -> str:
    """One labelled checkbox; `read` is shown ticked and cannot be unticked."""
    e = html.escape
    ident = "scope-" + scope.replace(":", "-")
    name = "" if scope == "read" else ' name="scope"'
    locked = " disabled" if scope == "read" else ""
    return (
        f'<p><input type="checkbox" id="{ident}"{name} value="{e(scope)}" checked'
        f'{locked}> <label for="{ident}">{e(SCOPE_LABELS[scope])}'
        f" <code>{e(scope)}</code></label></p>"
    )


CONSENT_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Authorize application {app} | Strava simulator</title></head>
<body><main>
<h1>Authorize application {app}</h1>
<form method="post" action="/oauth/accept_application">
{hidden}
<p><label for="athlete">Log in as</label>
<select id="athlete" name="athlete_id">{options}</select></p>
<fieldset><legend>The application asks to:</legend>{boxes}</fieldset>
<button type="submit" name="decision" value="authorize">Authorize</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form></main></body></html>
"""


async def accept(request: Request) -> Response:
    """POST /oauth/accept_application: redirect back with a code or a refusal."""
    sim: Simulator = request.app.state.sim
    form = await request.form()
    values = {key: str(value) for key, value in form.items()}
    try:
        client_id = check_client(sim, values, secret=False)
        check_redirect(sim, values.get("redirect_uri", ""))
        athlete_id = int(values.get("athlete_id") or _first_athlete(sim))
        if athlete_id not in sim.world.athletes:
            raise bad_request("Athlete", "athlete_id")
    except (StravaError, ValueError) as error:
        return _as_error(error)
    answer: dict[str, str] = {"state": values.get("state", "")}
    if values.get("decision") != "authorize":
        answer["error"] = "access_denied"
        return _redirect(values["redirect_uri"], answer)
    ticked = requested_scopes(",".join(str(v) for v in form.getlist("scope")))
    asked = requested_scopes(values.get("requested_scope", ""))
    granted = tuple(scope for scope in asked if scope in ticked)
    answer["code"] = sim.tokens.issue_code(client_id, athlete_id, granted)
    answer["scope"] = ",".join(granted)
    return _redirect(values["redirect_uri"], answer)


def _first_athlete(sim: Simulator) -> int:
    """The default athlete on the consent page."""
    athlete = sim.world.first_athlete()
    if athlete is None:
        raise bad_request("Athlete", "athlete_id")
    return athlete.id


def _as_error(error: Exception) -> Response:
    """A Strava-shaped response for a failed consent submission."""
    if isinstance(error, StravaError):
        return error.response()
    return bad_request("Athlete", "athlete_id").response()


def _redirect(uri: str, values: dict[str, str]) -> RedirectResponse:
    """A 302 to `uri` with `values` added to its query."""
    joiner = "&" if urlsplit(uri).query else "?"
    return RedirectResponse(uri + joiner + urlencode(values), status_code=302)


async def token(request: Request) -> Response:
    """POST /oauth/token: exchange a code or a refresh token."""
    sim: Simulator = request.app.state.sim
    values = await params(request)
    try:
        client_id = check_client(sim, values, secret=True)
        grant = values.get("grant_type", "authorization_code")
        if grant == "authorization_code":
            access, refresh = sim.tokens.exchange(client_id, values.get("code", ""))
            body = token_body(sim, access, refresh)
            body["athlete"] = athlete_summary(sim, access.athlete_id)
        elif grant == "refresh_token":
            access, refresh = sim.tokens.renew(
                client_id, values.get("refresh_token", "")
            )
            body = refresh_body(sim, access, refresh)
        else:
            raise bad_request("RequestToken", "grant_type")
    except StravaError as error:
        return error.response()
    return JSONResponse(body)


def token_body(
    sim: Simulator, access: AccessToken, refresh: RefreshToken
) -> dict[str, Any]:
    """A token response in Strava's key order."""
    return {
        "token_type": "Bearer",
        "expires_at": access.expires_at,
        "expires_in": access.expires_at - int(sim.clock.now()),
        "refresh_token": refresh.token,
        "access_token": access.token,
    }


def refresh_body(
    sim: Simulator, access: AccessToken, refresh: RefreshToken
) -> dict[str, Any]:
    """A refresh response, in the key order Strava used for it."""
    body = token_body(sim, access, refresh)
    order = ("token_type", "access_token", "expires_at", "expires_in", "refresh_token")
    return {key: body[key] for key in order}


def athlete_summary(sim: Simulator, athlete_id: int) -> dict[str, Any]:
    """The athlete object sent with the first token exchange."""
    detailed = sim.athlete_body(athlete_id)
    keys = (
        "id", "username", "resource_state", "firstname", "lastname", "city",
        "state", "country", "sex", "premium", "summit", "created_at", "updated_at",
        "badge_type_id", "profile_medium", "profile", "friend", "follower",
    )  # fmt: skip
    summary = {key: detailed[key] for key in keys}
    summary["resource_state"] = 2
    return summary


async def deauthorize(request: Request) -> Response:
    """POST /oauth/deauthorize: revoke the athlete's tokens for the app."""
    sim: Simulator = request.app.state.sim
    values = await params(request)
    bearer = request.headers.get("authorization", "")
    raw = values.get("access_token") or bearer.removeprefix("Bearer ").strip()
    found = sim.tokens.lookup(raw)
    if found is None:
        return invalid_token().response()
    sim.deauthorize(found.client_id, found.athlete_id)
    return JSONResponse({"access_token": raw})


async def revoke(request: Request) -> Response:
    """POST /oauth/revoke (RFC 7009): revoke the authorization behind a token."""
    sim: Simulator = request.app.state.sim
    values = await params(request)
    if "client_id" in values:
        try:
            check_client(sim, values, secret=True)
        except StravaError:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
    raw = values.get("token", "")
    found = sim.tokens.access.get(raw) or sim.tokens.refresh.get(raw)
    if found is not None:
        sim.deauthorize(found.client_id, found.athlete_id)
    return Response(status_code=200)


routes = [
    Route("/oauth/authorize", authorize, methods=["GET"]),
    Route("/oauth/accept_application", accept, methods=["POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/deauthorize", deauthorize, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
]
