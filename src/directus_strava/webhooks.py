"""Strava's push events: the callback that validates, checks and queues them.

Strava waits at most 2 s for an answer, and its events are not signed. So the
callback lives under a path holding a secret derived from SERVICE_SECRET_KEY,
checks every event against what the service knows (its subscription, its
athletes), trusts nothing in the body beyond ids, and answers after one local
INSERT into the job queue. Fetching the activity and writing Directus happen
later, in the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from directus_strava.clock import Clock
from directus_strava.errors import WebhookRejected
from directus_strava.jobs import INTERACTIVE, LIVE, Queue
from directus_strava.settings import Settings
from directus_strava.store import MAX_INTEGER, Store

if TYPE_CHECKING:
    from directus_strava.service import Service

log = logging.getLogger(__name__)

MAX_BODY = 4096
MAX_CHALLENGE = 256
SUBSCRIPTION_KEY = "webhook_subscription_id"
LAST_EVENT_KEY = "webhook_last_event_at"
# The time of the last event is written at most this often (seconds).
LAST_EVENT_EVERY = 30.0
# An import waits this long after the last event for its activity, so a burst
# of edits (or Strava's retries) ends in one import.
SETTLE_SECONDS = 2.0


def _derive(secret_key: str, label: str) -> str:
    digest = hmac.new(secret_key.encode(), label.encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


def path_secret(settings: Settings) -> str:
    """The unguessable part of the callback path (stable for a secret key)."""
    return _derive(settings.service_secret_key.get_secret_value(), "webhook-path")


def verify_token(settings: Settings) -> str:
    """The token Strava must echo when it validates the callback."""
    return _derive(settings.service_secret_key.get_secret_value(), "verify-token")


def callback_url(settings: Settings) -> str:
    """Where Strava sends events: the public URL plus the secret path."""
    return f"{settings.public()}/webhook/{path_secret(settings)}"


def redact(url: str) -> str:
    """A callback URL fit for logs and pages: the path secret hidden."""
    return re.sub(r"/webhook/[^/?#]+", "/webhook/…", url)


class Event(BaseModel):
    """A push event, reduced to the ids and kinds the service acts on."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    object_type: Literal["activity", "athlete"]
    aspect_type: Literal["create", "update", "delete"]
    object_id: StrictInt = Field(gt=0, le=MAX_INTEGER)
    owner_id: StrictInt = Field(gt=0, le=MAX_INTEGER)
    subscription_id: StrictInt = Field(gt=0, le=MAX_INTEGER)
    event_time: StrictInt = 0
    updates: dict[str, Any] = Field(default_factory=dict)

    @property
    def deauthorization(self) -> bool:
        """True when the athlete revoked the app."""
        authorized = str(self.updates.get("authorized", "")).lower()
        return self.object_type == "athlete" and authorized == "false"


def parse_event(body: bytes) -> Event:
    """Read an event body, or say plainly what is wrong with it."""
    if len(body) > MAX_BODY:
        raise WebhookRejected(f"event body over {MAX_BODY} bytes", 413)
    try:
        return Event.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise WebhookRejected(f"malformed event: {where}: {error['msg']}") from None


class Intake:
    """Checks events against what the service knows and queues their work."""

    def __init__(self, store: Store, queue: Queue, clock: Clock) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock
        self._noted = 0.0

    def accept(self, event: Event) -> str:
        """Queue what an event asks for; returns the job kind (or 'ignored')."""
        self._check_subscription(event)
        self._check_owner(event)
        kind = self._enqueue(event)
        self._note_arrival()
        return kind

    def _check_subscription(self, event: Event) -> None:
        known = self.store.get(SUBSCRIPTION_KEY)
        if known is None or int(known) != event.subscription_id:
            raise WebhookRejected(
                f"unknown subscription {event.subscription_id}", status=403
            )

    def _check_owner(self, event: Event) -> None:
        row = self.store.db.execute(
            "SELECT access_token IS NOT NULL AS connected FROM athletes WHERE id = ?",
            (event.owner_id,),
        ).fetchone()
        if row is None:
            raise WebhookRejected(f"unknown athlete {event.owner_id}", status=403)
        if not row["connected"] and not event.deauthorization:
            raise WebhookRejected(
                f"athlete {event.owner_id} is no longer connected", status=403
            )

    def _enqueue(self, event: Event) -> str:
        owner, target = event.owner_id, event.object_id
        if event.object_type == "athlete":
            if not event.deauthorization:
                return "ignored"
            self.queue.put("deauthorize", athlete_id=owner, priority=INTERACTIVE)
            return "deauthorize"
        if event.aspect_type == "delete":
            with self.store.transaction():
                # The activity is gone: an import still waiting would only fail.
                self.queue.cancel(f"import:{owner}:{target}")
                self.queue.put("delete", athlete_id=owner, object_id=target)
            return "delete"
        self.queue.put(
            "import",
            athlete_id=owner,
            object_id=target,
            priority=LIVE,
            not_before=self.clock.now() + SETTLE_SECONDS,
        )
        return "import"

    def _note_arrival(self) -> None:
        now = self.clock.now()
        if now - self._noted < LAST_EVENT_EVERY:
            return
        self._noted = now
        self.store.put(LAST_EVENT_KEY, str(now))

    def last_event_at(self) -> float | None:
        """When the last accepted event arrived (to within LAST_EVENT_EVERY)."""
        raw = self.store.get(LAST_EVENT_KEY)
        return float(raw) if raw else None


def routes(service: Service) -> list[Route]:
    """The callback routes (GET validation, POST events) for the web app."""
    settings: Settings = service.settings
    intake = Intake(service.store, service.queue, service.clock)
    secret, token = path_secret(settings), verify_token(settings)

    async def validate(request: Request) -> Response:
        if not _same(request.path_params["secret"], secret):
            return _refused("unknown callback path", 404, "validation")
        query = request.query_params
        challenge = query.get("hub.challenge", "")
        wrong = query.get("hub.mode") != "subscribe" or not _same(
            query.get("hub.verify_token", ""), token
        )
        if wrong or not challenge or len(challenge) > MAX_CHALLENGE:
            return _refused("verify token or challenge wrong", 403, "validation")
        log.info("event=webhook_validated")
        return JSONResponse({"hub.challenge": challenge})

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        if not _same(request.path_params["secret"], secret):
            return _refused("unknown callback path", 404, "event")
        try:
            event = parse_event(await _bounded_body(request))
            kind = intake.accept(event)
        except WebhookRejected as exc:
            return _refused(str(exc), exc.status, "event")
        log.info(
            "event=webhook_event object_type=%s aspect=%s object=%s owner=%s "
            "queued=%s ms=%.1f",
            event.object_type,
            event.aspect_type,
            event.object_id,
            event.owner_id,
            kind,
            (time.perf_counter() - started) * 1000,
        )
        return JSONResponse({"queued": kind})

    path = "/webhook/{secret}"
    return [
        Route(path, validate, methods=["GET"], name="webhook_validate"),
        Route(path, receive, methods=["POST"], name="webhook_event"),
    ]


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison that takes any text a request may carry."""
    return hmac.compare_digest(given.encode(), expected.encode())


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise WebhookRejected(f"event body over {MAX_BODY} bytes", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise WebhookRejected(f"event body over {MAX_BODY} bytes", 413)
    return body


def _refused(reason: str, status: int, what: str) -> Response:
    log.warning(
        "event=webhook_rejected what=%s status=%s reason=%s",
        what,
        status,
        json.dumps(reason),
    )
    return JSONResponse({"error": reason}, status_code=status)
