"""The app's one webhook subscription: create, show, delete, and check it.

Strava keeps one subscription per application. Creating it makes Strava call
our callback at once and wait for the answer, so the service's web server must
be running and reachable at SERVICE_PUBLIC_URL while `create` runs. The check
says in a plain sentence whether events can reach us, and adopts a
subscription that points here but is not yet remembered.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from directus_strava.clock import Clock
from directus_strava.errors import DirectusStravaError, StravaError
from directus_strava.store import Store
from directus_strava.strava import PushSubscriptions
from directus_strava.webhooks import LAST_EVENT_KEY, SUBSCRIPTION_KEY, redact

log = logging.getLogger(__name__)

STATUS_KEY = "webhook_subscription_status"
# Strava gives the callback 2 s to answer its validation GET.
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class SubscriptionStatus:
    """What the last check found: a state and a sentence for people."""

    state: str  # ok | none | elsewhere | failing | unknown
    sentence: str
    subscription_id: int | None
    checked_at: float

    @property
    def ok(self) -> bool:
        """True when Strava's events can reach this service."""
        return self.state == "ok"


class Subscriptions:
    """Manages the subscription with the app's credentials."""

    def __init__(
        self,
        api: PushSubscriptions,
        store: Store,
        clock: Clock,
        callback_url: str,
        verify_token: str,
    ) -> None:
        self.api = api
        self.store = store
        self.clock = clock
        self.callback_url = callback_url
        self._verify_token = verify_token

    def show(self) -> dict[str, Any] | None:
        """The app's subscription as Strava lists it, callback redacted."""
        found = self._current()
        if found is None:
            return None
        return {**found, "callback_url": redact(str(found.get("callback_url")))}

    def create(self, replace: bool = False) -> int:
        """Subscribe this service; with `replace`, drop a subscription elsewhere."""
        found = self._current()
        if found is not None and found.get("callback_url") == self.callback_url:
            return self._remember(int(found["id"]))
        if found is not None and not replace:
            raise StravaError(
                f"The app already has subscription {found['id']} sending events "
                f"to {redact(str(found.get('callback_url')))}: delete it first, "
                "or create with --replace."
            )
        if found is not None:
            self.api.delete(int(found["id"]))
        try:
            subscription_id = self.api.create(self.callback_url, self._verify_token)
        except StravaError as exc:
            raise StravaError(
                f"{exc} Strava must reach {redact(self.callback_url)} within 2 s: "
                "start the service first and make sure SERVICE_PUBLIC_URL is "
                "reachable from the internet with no login or bot check in front.",
                exc.status,
            ) from None
        return self._remember(subscription_id)

    def delete(self) -> int | None:
        """Remove the app's subscription; returns its id (None if there was none)."""
        found = self._current()
        self.store.put(SUBSCRIPTION_KEY, None)
        if found is None:
            return None
        self.api.delete(int(found["id"]))
        log.info("event=subscription_deleted id=%s", found["id"])
        return int(found["id"])

    def check(self) -> SubscriptionStatus:
        """Find out whether events reach us; remembers and logs the answer."""
        try:
            status = self._diagnose()
        except DirectusStravaError as exc:
            status = self._status("unknown", f"Cannot check the subscription: {exc}")
        self.store.put(STATUS_KEY, json.dumps(asdict(status)))
        level = logging.INFO if status.ok else logging.WARNING
        log.log(level, "event=subscription_check state=%s", status.state)
        return status

    def last_status(self) -> SubscriptionStatus | None:
        """The last check's result, for pages and the CLI."""
        raw = self.store.get(STATUS_KEY)
        return SubscriptionStatus(**json.loads(raw)) if raw else None

    def _diagnose(self) -> SubscriptionStatus:
        found = self._current()
        if found is None:
            self.store.put(SUBSCRIPTION_KEY, None)
            return self._status(
                "none",
                "Strava has no webhook subscription for this app, so no events "
                "arrive (polling stands in): run `directus-strava subscription "
                "create` while the service runs.",
            )
        where = str(found.get("callback_url"))
        if where != self.callback_url:
            return self._status(
                "elsewhere",
                f"The app's subscription {found['id']} sends events to "
                f"{redact(where)}, not to this service "
                f"({redact(self.callback_url)}): run `directus-strava "
                "subscription create --replace`.",
                int(found["id"]),
            )
        self._remember(int(found["id"]))
        return self._probe(int(found["id"]))

    def _probe(self, subscription_id: int) -> SubscriptionStatus:
        problem = self.probe()
        if problem:
            return self._status(
                "failing",
                f"Subscription {subscription_id} points here, but {problem} "
                "Strava will stop delivering if its checks fail like this.",
                subscription_id,
            )
        return self._status(
            "ok",
            f"Subscription {subscription_id} delivers events to this service.",
            subscription_id,
        )

    def probe(self) -> str | None:
        """Answer our own callback as Strava would; a sentence if it fails."""
        challenge = secrets.token_hex(8)
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": self._verify_token,
        }
        try:
            answer = httpx.get(self.callback_url, params=query, timeout=PROBE_TIMEOUT)
            echoed = answer.json().get("hub.challenge") if answer.is_success else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return (
                f"its validation request to {redact(self.callback_url)} failed "
                f"({type(exc).__name__}): is SERVICE_PUBLIC_URL right?"
            )
        if echoed != challenge:
            return (
                f"its validation request got HTTP {answer.status_code} without the "
                "challenge: a proxy or login page may stand in front of the service."
            )
        return None

    def _current(self) -> dict[str, Any] | None:
        found = self.api.listing()
        return found[0] if found else None

    def _remember(self, subscription_id: int) -> int:
        if self.store.get(SUBSCRIPTION_KEY) != str(subscription_id):
            self.store.put(SUBSCRIPTION_KEY, str(subscription_id))
            # Silence is counted from here until the first event arrives.
            self.store.put(LAST_EVENT_KEY, str(self.clock.now()))
            log.info("event=subscription_remembered id=%s", subscription_id)
        return subscription_id

    def _status(
        self, state: str, sentence: str, subscription_id: int | None = None
    ) -> SubscriptionStatus:
        return SubscriptionStatus(state, sentence, subscription_id, self.clock.now())
