"""The web pages: status, recent activities, connecting athletes.

Pages never call Strava: they read the local database (athletes, ledger,
queue, rate budget) and turn clicks into jobs for the worker, which runs in a
thread of this process. Every page but the health check, the login form and
the webhook callback needs a Directus user (see access.py); every POST
carries a CSRF token and must come from our own origin.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from directus_strava import webhooks
from directus_strava.access import SESSION_COOKIE, Doorkeeper, Session, Visitor
from directus_strava.errors import (
    AccessDenied,
    DirectusError,
    DirectusStravaError,
    DirectusUnavailable,
    OAuthError,
    StravaUnavailable,
)
from directus_strava.importer import import_state
from directus_strava.jobs import INTERACTIVE, SYNC
from directus_strava.service import Service
from directus_strava.store import MAX_INTEGER
from directus_strava.worker import COSTS

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PER_PAGE = 30
HEALTH_CACHE_SECONDS = 5.0


@dataclass
class Visit:
    """One request to a page, with who makes it and what they sent."""

    request: Request
    session: Session
    visitor: Visitor | None
    form: FormData = field(default_factory=FormData)

    def field(self, name: str, default: str = "") -> str:
        """A form field (or query parameter) as text."""
        value = self.form.get(name) or self.request.query_params.get(name)
        return str(value) if value is not None else default

    def number(self, name: str, default: int) -> int:
        """A positive whole-number field, or the default."""
        return _count(self.field(name)) or default


Page = Callable[[Visit], Response]


def create_app(service: Service, background: bool = True) -> Starlette:
    """The ASGI application serving the pages (and the worker, if `background`)."""
    site = Site(service, background)
    routes: list[BaseRoute] = [
        Route("/health", site.health),
        Route("/login", site.door(site.login_page, open_=True), methods=["GET"]),
        Route("/login", site.door(site.login, open_=True), methods=["POST"]),
        Route("/logout", site.door(site.logout), methods=["POST"]),
        Route("/", site.door(site.status_page)),
        Route("/fragments/queue", site.door(site.queue_fragment)),
        Route("/activities", site.door(site.activities_page)),
        Route("/fragments/activities", site.door(site.activity_rows)),
        Route("/activities/refresh", site.door(site.refresh), methods=["POST"]),
        Route("/activities/import", site.door(site.enqueue), methods=["POST"]),
        Route("/connect", site.door(site.connect), methods=["POST"]),
        Route("/oauth/callback", site.door(site.callback)),
        Route("/disconnect", site.door(site.disconnect), methods=["POST"]),
        Route("/queue/retry", site.door(site.retry), methods=["POST"]),
        Route("/subscription", site.door(site.subscription), methods=["POST"]),
        *webhooks.routes(service),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    prefix = service.settings.service_path_prefix
    return Starlette(
        routes=routes,
        middleware=[Middleware(Frontage, prefix=prefix)],
        exception_handlers={DirectusStravaError: site.trouble},
        lifespan=site.lifespan,
    )


class Site:
    """The pages and what they share: the service, templates, the doorkeeper."""

    def __init__(self, service: Service, background: bool = True) -> None:
        settings = service.settings
        self.service = service
        self.background = background
        self.keeper = Doorkeeper(settings)
        self.prefix = settings.service_path_prefix
        self.base = _base_url(settings.public(), self.prefix)
        self.origin = _origin(self.base)
        self.secure = self.base.startswith("https://")
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters.update(km=_km, when=_when, ago=_ago)
        self._health: tuple[float, str] = (0.0, "unreachable")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Run the worker and scheduler beside the pages; stop them with them."""
        stop = threading.Event()
        threads = self.service.start_background(stop) if self.background else []
        log.info("event=web_started url=%s demo=%s", self.base, self._demo)
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                await run_in_threadpool(thread.join, 30)
            log.info("event=web_stopped")

    @property
    def _demo(self) -> bool:
        return self.service.settings.service_demo

    # The door: session, CSRF, who is asking ---------------------------------

    def door(
        self, page: Page, open_: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: load the session, check POSTs and the visitor."""

        async def endpoint(request: Request) -> Response:
            session = self.keeper.session(request.cookies.get(SESSION_COOKIE))
            visit = Visit(request, session, None)
            try:
                if request.method == "POST":
                    visit.form = await request.form()
            except HTTPException as exc:
                # A body that is no form at all (say, multipart without a
                # boundary): nothing to act on, and nobody to check yet.
                reason = f"The form could not be read ({exc.detail})."
                return self._refusal(visit, reason, status=400)
            response = await run_in_threadpool(self._enter, page, visit, open_)
            if session.changed:
                self._set_cookie(response, session)
            return response

        return endpoint

    def _enter(self, page: Page, visit: Visit, open_: bool) -> Response:
        request = visit.request
        if request.method == "POST" and not self._same_site(visit):
            log.warning("event=csrf_rejected path=%s", request.url.path)
            return self._refusal(visit, "This form did not come from this site.")
        try:
            visit.visitor = self.keeper.visitor(
                visit.session, request.cookies.get(self.keeper.cookie_name)
            )
        except AccessDenied as exc:
            if not open_:
                return self._turn_away(visit, str(exc))
        return page(visit)

    def _same_site(self, visit: Visit) -> bool:
        headers = visit.request.headers
        claimed = headers.get("origin") or _origin(headers.get("referer", ""))
        if claimed and claimed != self.origin:
            return False
        return self.keeper.csrf_ok(visit.session, visit.field("csrf"))

    def _turn_away(self, visit: Visit, reason: str) -> Response:
        request = visit.request
        if request.method == "GET" and not request.headers.get("hx-request"):
            target = request.url.path.removeprefix(self.prefix) or "/"
            if request.url.query:
                target += "?" + request.url.query
            query = urlencode({"next": target})
            return self.redirect(f"/login?{query}")
        return self._refusal(visit, reason, status=401)

    def _refusal(self, visit: Visit, reason: str, status: int = 403) -> Response:
        context = {"title": "Refused", "message": reason}
        return self.render(visit, "error.html", context, status)

    def _set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.keeper.seal(session),
            max_age=None,
            path=self.prefix or "/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    # Rendering --------------------------------------------------------------

    def render(
        self,
        visit: Visit,
        name: str,
        context: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        """A template with what every page needs (prefix, CSRF token, visitor)."""
        shared = {
            "prefix": self.prefix,
            "csrf": self.keeper.csrf_token(visit.session),
            "visitor": visit.visitor,
            "demo": self._demo,
            "strava_web": self.service.settings.strava_web(),
        }
        response = self.templates.TemplateResponse(
            visit.request, name, shared | (context or {}), status_code=status
        )
        _harden(response, self.service.settings.strava_web())
        return response

    def redirect(self, path: str) -> Response:
        """A 303 to one of our pages."""
        return RedirectResponse(self.prefix + path, status_code=303)

    async def trouble(self, request: Request, exc: Exception) -> Response:
        """Our errors as a page that says what failed and what to do."""
        status = 400 if isinstance(exc, OAuthError | AccessDenied) else 502
        if isinstance(exc, DirectusUnavailable | StravaUnavailable):
            status = 503
        log.warning("event=page_error path=%s error=%s", request.url.path, exc)
        session = self.keeper.session(request.cookies.get(SESSION_COOKIE))
        visit = Visit(request, session, None)
        context = {"title": "Something went wrong", "message": str(exc)}
        return self.render(visit, "error.html", context, status)

    # Open pages -------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """Directus and its token, Strava tokens, subscription, queue depth."""
        report = await run_in_threadpool(self._health_report)
        status = 200 if report["status"] == "ok" else 503
        return JSONResponse(report, status_code=status)

    def _health_report(self) -> dict[str, Any]:
        checked_at, directus = self._health
        if time.monotonic() - checked_at > HEALTH_CACHE_SECONDS:
            directus = self._directus_health()
            self._health = (time.monotonic(), directus)
        tokens: dict[str, int] = {}
        for athlete in self.service.tokens.connected():
            status = athlete["token_status"]
            tokens[status] = tokens.get(status, 0) + 1
        subscription = self.service.subscriptions.last_status()
        return {
            "status": "ok" if directus == "ok" else "degraded",
            "directus": directus != "unreachable",
            "directus_token": directus if directus != "unreachable" else "unknown",
            "tokens": tokens,
            "subscription": subscription.state if subscription else "unchecked",
            "queue": self.service.queue.counts(),
        }

    def _directus_health(self) -> str:
        """ok, unreachable, rejected (DIRECTUS_TOKEN refused) or forbidden."""
        directus = self.service.directus
        if not directus.health():
            return "unreachable"
        collection = self.service.settings.directus_collection
        try:
            directus.items(collection, fields="id", limit=1)
        except DirectusUnavailable:
            return "unreachable"
        except DirectusError as exc:
            # 403: the collection is missing or the token's user may not read it.
            return "rejected" if exc.status == 401 else "forbidden"
        return "ok"

    def login_page(self, visit: Visit) -> Response:
        """The login form (or straight on, for someone already in)."""
        if visit.visitor is not None:
            return self.redirect(_local(visit.field("next")))
        return self.render(visit, "login.html", {"next": visit.field("next")})

    def login(self, visit: Visit) -> Response:
        """Check the email and password with Directus, then open a session."""
        email, otp = visit.field("email").strip(), visit.field("otp").strip()
        try:
            visitor = self.keeper.login(email, visit.field("password"), otp)
        except AccessDenied as exc:
            context = {"next": visit.field("next"), "error": str(exc), "email": email}
            return self.render(visit, "login.html", context, 401)
        self.keeper.enter(visit.session, visitor)
        log.info("event=login user=%s admin=%s", visitor.user_id, visitor.admin)
        return self.redirect(_local(visit.field("next")))

    # Pages behind the door ----------------------------------------------------

    def logout(self, visit: Visit) -> Response:
        """End our session, and the Directus one this browser came in with."""
        self.keeper.leave(visit.session)
        cookie = visit.request.cookies.get(self.keeper.cookie_name)
        response = self.redirect("/login")
        if cookie:
            self.keeper.logout_directus(cookie)
            response.delete_cookie(self.keeper.cookie_name, path="/")
        log.info("event=logout user=%s", visit.visitor and visit.visitor.user_id)
        return response

    def status_page(self, visit: Visit) -> Response:
        """Athletes, the queue, the rate budget and the history import."""
        context = self._queue_context() | {
            "athletes": self.service.tokens.connected(),
            "subscription": self.service.subscriptions.last_status(),
            "callback": webhooks.redact(webhooks.callback_url(self.service.settings)),
            "notice": visit.field("notice"),
        }
        return self.render(visit, "status.html", context)

    def queue_fragment(self, visit: Visit) -> Response:
        """The queue and budget section alone, for polling."""
        return self.render(visit, "_queue.html", self._queue_context())

    def _queue_context(self) -> dict[str, Any]:
        queue = self.service.queue
        return {
            "counts": queue.counts(),
            "running": queue.listing("running", 10),
            "waiting": queue.listing("waiting", 10),
            "failed": queue.listing("failed", 50),
            "budget": self.service.budget.snapshot(),
            "history": self._history(),
        }

    def _history(self) -> dict[str, Any] | None:
        """Progress and an estimated finish while a history import runs."""
        db = self.service.store.db
        pending = db.execute(
            "SELECT kind, count(*) AS n FROM jobs WHERE state != 'failed' "
            "AND priority >= ? GROUP BY kind",
            (SYNC,),
        ).fetchall()
        if not pending:
            return None
        left = {row["kind"]: row["n"] for row in pending}
        done = db.execute(
            "SELECT count(*) FROM ledger WHERE level = 'detail'"
        ).fetchone()[0]
        imports = left.get("import", 0)
        requests = sum(COSTS.get(kind, 1) * n for kind, n in left.items())
        return {
            "done": done,
            "left": imports,
            "percent": math.floor(100 * done / max(1, done + imports)),
            "finish": self._finish(requests),
        }

    def _finish(self, requests: int) -> float | None:
        snapshot = self.service.budget.snapshot()
        meter = snapshot.get("read") or snapshot.get("overall")
        if not isinstance(meter, dict):
            return None
        # The sustainable pace is the tighter of the two windows' limits.
        pace = min(meter["limit_15min"] / 900, meter["limit_day"] / 86400)
        return float(self.service.clock.now() + requests / max(pace, 1e-6))

    def activities_page(self, visit: Visit) -> Response:
        """Recent activities from the ledger, a page at a time."""
        context = self._activity_context(visit) | {"notice": visit.field("notice")}
        return self.render(visit, "activities.html", context)

    def activity_rows(self, visit: Visit) -> Response:
        """The activity table's rows alone, for polling."""
        return self.render(visit, "_rows.html", self._activity_context(visit))

    def _activity_context(self, visit: Visit) -> dict[str, Any]:
        page = visit.number("page", 1)
        per_page = min(visit.number("per_page", PER_PAGE), 200)
        db = self.service.store.db
        rows = db.execute(
            "SELECT * FROM ledger WHERE state != 'deleted' "
            "ORDER BY start_date IS NULL, start_date DESC, activity_id DESC "
            "LIMIT ? OFFSET ?",
            (per_page, (page - 1) * per_page),
        ).fetchall()
        queued = {
            row["object_id"]
            for row in db.execute(
                "SELECT object_id FROM jobs WHERE kind = 'import' "
                "AND state IN ('waiting', 'running')"
            )
        }
        settings = self.service.settings
        return {
            "rows": [_activity(row, queued) for row in rows],
            "page": page,
            "per_page": per_page,
            "busy": self.service.queue.counts()["waiting"] > 0 or bool(queued),
            "athletes": self.service.tokens.connected(),
            "item_url": f"{settings.directus()}/admin/content/"
            f"{settings.directus_collection}/",
        }

    def refresh(self, visit: Visit) -> Response:
        """Ask Strava (through the worker) for one page of each athlete's list."""
        page = visit.number("page", 1)
        per_page = min(visit.number("per_page", PER_PAGE), 200)
        athletes = self._athlete_ids()
        for athlete_id in athletes:
            self.service.queue.put(
                "list",
                athlete_id=athlete_id,
                priority=INTERACTIVE,
                payload={"page": page, "per_page": per_page},
                key=f"list:{athlete_id}:{page}:{per_page}",
            )
        notice = f"Asked Strava for page {page} of {len(athletes)} athlete(s)."
        if not athletes:
            notice = "No athlete is connected: connect one on the status page."
        return self._back_to_list(page, per_page, notice)

    def enqueue(self, visit: Visit) -> Response:
        """Queue imports of the ticked activities (or the one button pressed)."""
        one = visit.field("one")
        picked = [one] if one else [str(v) for v in visit.form.getlist("activity")]
        ids = [number for number in map(_count, picked) if number]
        owners = self._owners(ids)
        for activity_id, athlete_id in owners.items():
            self.service.queue.put(
                "import",
                athlete_id=athlete_id,
                object_id=activity_id,
                priority=INTERACTIVE,
            )
        log.info("event=imports_queued count=%s", len(owners))
        notice = f"Queued {len(owners)} import(s)." if owners else "Nothing ticked."
        page = visit.number("page", 1)
        return self._back_to_list(page, visit.number("per_page", PER_PAGE), notice)

    def _owners(self, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.service.store.db.execute(
            f"SELECT activity_id, athlete_id FROM ledger WHERE activity_id IN ({marks})"
            " AND athlete_id != 0",
            ids,
        )
        return {row["activity_id"]: row["athlete_id"] for row in rows}

    def _back_to_list(self, page: int, per_page: int, notice: str) -> Response:
        query = urlencode({"page": page, "per_page": per_page, "notice": notice})
        return self.redirect(f"/activities?{query}")

    def connect(self, visit: Visit) -> Response:
        """Send the visitor to Strava's consent page."""
        url = self.service.tokens.begin(self.base + "/oauth/callback")
        return RedirectResponse(url, status_code=303)

    def callback(self, visit: Visit) -> Response:
        """Strava's redirect back: store the tokens, explain the scopes chosen."""
        params = dict(visit.request.query_params)
        connection, _ = self.service.tokens.finish(params)
        self.service.queue.put(
            "list",
            athlete_id=connection.athlete_id,
            priority=INTERACTIVE,
            payload={"page": 1, "per_page": PER_PAGE},
            key=f"list:{connection.athlete_id}:1:{PER_PAGE}",
        )
        context = {"connection": connection, "advice": connection.advice()}
        return self.render(visit, "connected.html", context)

    def disconnect(self, visit: Visit) -> Response:
        """Forget an athlete's tokens and drop their pending work."""
        athlete_id = visit.number("athlete", 0)
        self.service.tokens.forget(athlete_id)
        dropped = self.service.queue.drop_athlete(athlete_id)
        log.info("event=disconnected athlete=%s dropped=%s", athlete_id, dropped)
        notice = f"Disconnected athlete {athlete_id}; {dropped} job(s) dropped."
        return self.redirect("/?" + urlencode({"notice": notice}))

    def retry(self, visit: Visit) -> Response:
        """Send one failed job (or all of them) back to the queue."""
        job = visit.number("job", 0)
        count = self.service.queue.retry_failed(job or None)
        notice = f"{count} failed job(s) queued again."
        return self.redirect("/?" + urlencode({"notice": notice}))

    def subscription(self, visit: Visit) -> Response:
        """Check, create or delete the webhook subscription."""
        action = visit.field("action")
        subscriptions = self.service.subscriptions
        if action == "create":
            # Strava validates the callback while this request waits, so this
            # is the one page that talks to Strava itself; the worker may be
            # busy for minutes and Strava allows 2 seconds.
            notice = f"Subscribed (id {subscriptions.create()})."
            # Replace the verdict shown (often "none" from before) soon.
            self.service.queue.put("subscription_check", priority=INTERACTIVE)
        elif action == "delete":
            gone = subscriptions.delete()
            notice = f"Deleted subscription {gone}." if gone else "None to delete."
        else:
            self.service.queue.put("subscription_check", priority=INTERACTIVE)
            notice = "Checking the subscription; reload in a moment."
        return self.redirect("/?" + urlencode({"notice": notice}))

    def _athlete_ids(self) -> list[int]:
        return [
            int(row["id"])
            for row in self.service.tokens.connected()
            if row["token_status"] == "ok"
        ]


class Frontage:
    """Serve under a path prefix, log one line per request, set safe headers.

    A proxy may pass requests on with the prefix (`/strava/...`) or without
    it; both reach the same route.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.prefix:
            scope = dict(scope, root_path=self.prefix)
            if scope["path"] == self.prefix:
                # "/strava" typed without its slash is the status page too.
                scope["path"] = self.prefix + "/"
            elif not scope["path"].startswith(self.prefix + "/"):
                scope["path"] = self.prefix + scope["path"]
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            # The path only (a query string may hold an OAuth code), and the
            # webhook's secret path segment hidden.
            log.info(
                "event=request method=%s path=%s status=%s ms=%.0f",
                scope["method"],
                webhooks.redact(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )


def _harden(response: Response, strava_web: str) -> None:
    # form-action must allow Strava: Chrome applies it to the redirect that
    # follows the Connect form.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        f"form-action 'self' {_origin(strava_web)}; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


def _count(text: str) -> int:
    """A positive id or count from a form, or 0 for anything else.

    ASCII digits only ("²" is a digit to str.isdigit but not to int), and
    within SQLite's integers so a query never overflows.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_INTEGER)):
        return 0
    number = int(text)
    return number if number <= MAX_INTEGER else 0


def _activity(row: Any, queued: set[int]) -> dict[str, Any]:
    record = dict(row)
    record["status"] = _status(row, row["activity_id"] in queued)
    return record


def _status(row: Any, queued: bool) -> str:
    return "queued" if queued else import_state(row)


def _base_url(public: str, prefix: str) -> str:
    """Where browsers reach us: SERVICE_PUBLIC_URL, with the prefix if missing."""
    if prefix and not public.endswith(prefix):
        return public + prefix
    return public


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _local(target: str) -> str:
    """A `next` target only if it stays on this site."""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _km(metres: float | None) -> str:
    return "–" if metres is None else f"{metres / 1000:.1f} km"


def _when(value: str | float | None) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _ago(epoch: float | None) -> str:
    if not epoch:
        return "–"
    seconds = epoch - time.time()
    minutes = abs(seconds) / 60
    text = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    return f"in {text}" if seconds >= 0 else f"{text} ago"
