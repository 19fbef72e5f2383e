"""Push subscriptions: the validation handshake and event deliveries."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from strava_simulator.errors import StravaError, bad_request
from strava_simulator.oauth import check_client, params

if TYPE_CHECKING:
    from strava_simulator.app import Simulator

logger = logging.getLogger(__name__)
NOT_200 = "GET to callback URL does not return 200"


@dataclass
class Subscription:
    """The application's one push subscription."""

    id: int
    application_id: int
    callback_url: str
    created_at: float

    def body(self, fine: bool = False) -> dict[str, Any]:
        """The subscription as Strava lists it."""
        stamp = datetime.fromtimestamp(self.created_at, UTC)
        text = stamp.strftime(
            "%Y-%m-%dT%H:%M:%S.%f000Z" if fine else "%Y-%m-%dT%H:%M:%SZ"
        )
        return {
            "id": self.id,
            "resource_state": 2,
            "application_id": self.application_id,
            "callback_url": self.callback_url,
            "created_at": text,
            "updated_at": text,
        }


@dataclass
class Attempt:
    """One POST of an event to the callback."""

    status: int | None
    latency_ms: float
    error: str | None


@dataclass
class Delivery:
    """An event and what happened when it was sent."""

    event: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    delivered: bool = False
    finished: bool = False


class Hub:
    """Holds the subscription and delivers events from a background task."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.subscription: Subscription | None = None
        self.deliveries: list[Delivery] = []
        self._next_id = 131_300
        self._queue: asyncio.Queue[Delivery] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Start the delivery task on the running loop."""
        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient(trust_env=False)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop delivering and close the HTTP client."""
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def reset(self) -> None:
        """Forget the subscription and the delivery log."""
        self.subscription = None
        self.deliveries = []

    def publish(self, event: dict[str, Any]) -> None:
        """Queue `event` for the subscription, if there is one."""
        subscription, queue = self.subscription, self._queue
        if subscription is None or queue is None:
            return
        event = dict(event, subscription_id=subscription.id)
        delivery = Delivery(event=event)
        self.deliveries.append(delivery)
        queue.put_nowait(delivery)

    async def _run(self) -> None:
        """Deliver queued events one at a time, in order."""
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:  # keep the worker alive whatever a callback does
                logger.exception("webhook delivery crashed")
            delivery.finished = True

    async def _deliver(self, delivery: Delivery) -> None:
        """Up to the configured attempts, stopping at the first 2xx."""
        config = self._sim.config
        for number in range(config.webhook_attempts):
            if number:
                await asyncio.sleep(config.webhook_retry_delay)
            subscription = self.subscription
            if subscription is None:
                return
            attempt = await self._post(subscription.callback_url, delivery.event)
            delivery.attempts.append(attempt)
            if attempt.status is not None and 200 <= attempt.status < 300:
                delivery.delivered = True
                return

    async def _post(self, url: str, event: dict[str, Any]) -> Attempt:
        """POST one event and time it."""
        assert self._client is not None
        started = time.perf_counter()
        try:
            answer = await self._client.post(
                url, json=event, timeout=self._sim.config.webhook_timeout
            )
        except httpx.HTTPError as error:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(None, round(elapsed, 1), type(error).__name__)
        elapsed = (time.perf_counter() - started) * 1000
        return Attempt(answer.status_code, round(elapsed, 1), None)

    async def verify(self, callback_url: str, verify_token: str) -> None:
        """Strava's handshake: GET the callback and expect the challenge back."""
        assert self._client is not None
        challenge = secrets.token_hex(16)
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        try:
            answer = await self._client.get(
                callback_url, params=query, timeout=self._sim.config.verify_timeout
            )
        except httpx.HTTPError as error:
            raise bad_request("PushSubscription", "callback url", NOT_200) from error
        if answer.status_code != 200:
            raise bad_request("PushSubscription", "callback url", NOT_200)
        if _challenge_of(answer) != challenge:
            raise bad_request("PushSubscription", "callback url", "not verifiable")

    def subscribe(self, callback_url: str) -> Subscription:
        """Record the application's subscription."""
        self.subscription = Subscription(
            self._next_id,
            self._sim.config.client_id,
            callback_url,
            self._sim.clock.now(),
        )
        self._next_id += 1
        return self.subscription

    def report(self) -> list[dict[str, Any]]:
        """The delivery log as JSON."""
        return [asdict(delivery) for delivery in self.deliveries]

    def counts(self) -> dict[str, int]:
        """Totals of the delivery log."""
        finished = [d for d in self.deliveries if d.finished]
        return {
            "events": len(self.deliveries),
            "attempts": sum(len(d.attempts) for d in self.deliveries),
            "delivered": sum(d.delivered for d in self.deliveries),
            "failed": sum(not d.delivered for d in finished),
            "pending": len(self.deliveries) - len(finished),
        }


def _challenge_of(answer: httpx.Response) -> str | None:
    """The echoed challenge, or None if the body is not the expected JSON."""
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("hub.challenge") if isinstance(body, dict) else None


def _headers(sim: Simulator) -> dict[str, str]:
    """Rate headers on subscription calls, which Strava does not count."""
    return sim.limiter.headers(sim.config.client_id, sim.clock.now())


def _wrong_client() -> StravaError:
    """Wrong app credentials on a subscription call: 401, as on the API."""
    return StravaError(401, "Authorization Error", "Application", "", "invalid")


async def create(request: Request) -> Response:
    """POST push_subscriptions: verify the callback, then subscribe."""
    sim: Simulator = request.app.state.sim
    values = await params(request)
    try:
        check_client(sim, values, secret=True)
    except StravaError:
        return _wrong_client().response(_headers(sim))
    try:
        if sim.hub.subscription is not None:
            raise bad_request("PushSubscription", "", "already exists")
        callback_url = values.get("callback_url", "")
        if not callback_url.startswith(("http://", "https://")):
            raise bad_request("PushSubscription", "callback url", "invalid")
        await sim.hub.verify(callback_url, values.get("verify_token", ""))
    except StravaError as error:
        return error.response(_headers(sim))
    subscription = sim.hub.subscribe(callback_url)
    return JSONResponse(subscription.body(fine=True), 201, headers=_headers(sim))


async def listing(request: Request) -> Response:
    """GET push_subscriptions: the one subscription, or an empty list."""
    sim: Simulator = request.app.state.sim
    try:
        check_client(sim, await params(request), secret=True)
    except StravaError:
        return _wrong_client().response(_headers(sim))
    found = sim.hub.subscription
    body = [found.body()] if found else []
    return JSONResponse(body, headers=_headers(sim))


async def delete(request: Request) -> Response:
    """DELETE push_subscriptions/{id}: 204, or 404 for another id."""
    sim: Simulator = request.app.state.sim
    try:
        check_client(sim, await params(request), secret=True)
    except StravaError:
        return _wrong_client().response(_headers(sim))
    found = sim.hub.subscription
    if found is None or found.id != request.path_params["id"]:
        missing = StravaError(
            404, "Resource Not Found", "PushSubscription", "id", "invalid"
        )
        return missing.response(_headers(sim))
    sim.hub.subscription = None
    return Response(status_code=204, headers=_headers(sim))


def routes(prefix: str) -> list[Route]:
    """The subscription routes under the API prefix."""
    return [
        Route(f"{prefix}/push_subscriptions", create, methods=["POST"]),
        Route(f"{prefix}/push_subscriptions", listing, methods=["GET"]),
        Route(f"{prefix}/push_subscriptions/{{id:int}}", delete, methods=["DELETE"]),
    ]
