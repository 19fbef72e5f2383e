"""Strava's API v3, spoken over HTTP; the only module that calls it.

Every response feeds the rate budget. Errors are decided by status code, never
by the body, whose shape differs between Strava's eras.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx

from directus_strava.budget import RateBudget
from directus_strava.errors import (
    AuthorizationError,
    NotFound,
    RateLimited,
    StravaError,
    StravaUnavailable,
)

log = logging.getLogger(__name__)


class _SecretRedactor(logging.Filter):
    """Hides `client_secret=...` in httpx's request lines.

    Strava wants the app's secret in the query string of the subscription
    listing and deletion, and httpx logs every request's URL at INFO.
    """

    pattern = re.compile(r"(client_secret=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "client_secret=" in message:
            record.msg, record.args = self.pattern.sub(r"\1***", message), None
        return True


logging.getLogger("httpx").addFilter(_SecretRedactor())

STREAM_KEYS = (
    "time,latlng,distance,altitude,velocity_smooth,heartrate,cadence,watts,"
    "temp,moving,grade_smooth"
)
PAGE_SIZE = 200


class StravaClient:
    """Reads athletes' data from Strava on their behalf, within the budget."""

    def __init__(
        self,
        api_url: str,
        budget: RateBudget,
        access_token: Callable[[int], str],
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.budget = budget
        self._token = access_token
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def athlete(self, athlete_id: int) -> dict[str, Any]:
        """The authenticated athlete's profile."""
        result: dict[str, Any] = self._get(athlete_id, "/athlete")
        return result

    def activities(
        self,
        athlete_id: int,
        page: int = 1,
        per_page: int = PAGE_SIZE,
        after: int | None = None,
        before: int | None = None,
        bulk: bool = False,
    ) -> list[dict[str, Any]]:
        """One page of the athlete's activity summaries, newest first."""
        params: dict[str, int] = {"page": page, "per_page": per_page}
        if after is not None:
            params["after"] = after
        if before is not None:
            params["before"] = before
        result: list[dict[str, Any]] = self._get(
            athlete_id, "/athlete/activities", params, bulk
        )
        return result

    def activity(
        self, athlete_id: int, activity_id: int, bulk: bool = False
    ) -> dict[str, Any]:
        """An activity's detail: description, private note, laps, gear."""
        result: dict[str, Any] = self._get(
            athlete_id, f"/activities/{activity_id}", None, bulk
        )
        return result

    def streams(
        self, athlete_id: int, activity_id: int, bulk: bool = False
    ) -> dict[str, Any]:
        """An activity's streams keyed by type; empty when it has none."""
        params = {"keys": STREAM_KEYS, "key_by_type": "true"}
        try:
            result = self._get(
                athlete_id, f"/activities/{activity_id}/streams", params, bulk
            )
        except NotFound:
            # Manual activities have no streams; Strava answers 404 for them.
            return {}
        if isinstance(result, list):
            return {item["type"]: item for item in result if "type" in item}
        return dict(result)

    def photos(
        self, athlete_id: int, activity_id: int, bulk: bool = False
    ) -> list[dict[str, Any]]:
        """Links and captions of an activity's photos (Strava's and others')."""
        params = {"size": 2048, "photo_sources": "true"}
        result: list[dict[str, Any]] = self._get(
            athlete_id, f"/activities/{activity_id}/photos", params, bulk
        )
        return result

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _get(
        self,
        athlete_id: int,
        path: str,
        params: dict[str, Any] | None = None,
        bulk: bool = False,
    ) -> Any:
        wait = self.budget.wait(bulk=bulk)
        if wait > 0:
            raise RateLimited(
                f"Strava's rate budget is spent; next request in {wait:.0f} s.",
                until=self.budget.clock.now() + wait,
            )
        headers = {"Authorization": f"Bearer {self._token(athlete_id)}"}
        self.budget.spend()
        try:
            with self._http.stream(
                "GET", path, params=params, headers=headers
            ) as response:
                # Kept on the response, the body would live until the garbage
                # collector breaks httpx's reference cycle (6 MB for a
                # day-long activity's streams); joined here, it goes once read.
                body = b"".join(response.iter_bytes())
        except httpx.HTTPError as exc:
            raise StravaUnavailable(
                f"Strava could not be reached for {path}: {type(exc).__name__}."
            ) from None
        self.budget.observe(response.headers, response.status_code)
        _raise_for(response, athlete_id, path, self.budget)
        try:
            return json.loads(body)
        except ValueError:
            raise StravaUnavailable(
                f"Strava answered {path} with something that is not JSON."
            ) from None


def _raise_for(
    response: httpx.Response, athlete_id: int, path: str, budget: RateBudget
) -> None:
    status = response.status_code
    if status < 400:
        return
    what = f"{path} for athlete {athlete_id}"
    if status == 429:
        wait = budget.wait() or 60.0
        log.warning("event=rate_limited path=%s wait=%.0f", path, wait)
        raise RateLimited(
            f"Strava refused {what}: rate limit reached.",
            until=budget.clock.now() + wait,
        )
    if status >= 500:
        raise StravaUnavailable(f"Strava failed on {what} (HTTP {status}).", status)
    if status == 401:
        raise AuthorizationError(
            f"Strava no longer accepts the token of athlete {athlete_id}: "
            "they may have revoked access. Connect them again.",
            status,
        )
    if status == 403:
        raise AuthorizationError(
            f"Strava forbade {what} (HTTP 403): the app may be inactive or over "
            "its athlete limit (see strava.com/settings/api), or a scope was "
            "not granted. Fix the app, then connect again.",
            status,
        )
    if status == 404:
        raise NotFound(f"Strava has no {what} (HTTP 404).", status)
    raise StravaError(f"Strava refused {what} (HTTP {status}).", status)


class PushSubscriptions:
    """The app's webhook subscription, managed with the app's own credentials.

    These calls use the client id and secret, never an athlete's token, and
    Strava does not count them against the rate limits.
    """

    def __init__(
        self,
        api_url: str,
        client_id: int,
        client_secret: str,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._credentials = {
            "client_id": str(client_id),
            "client_secret": client_secret,
        }
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def listing(self) -> list[dict[str, Any]]:
        """The app's subscriptions (Strava allows at most one)."""
        response = self._send("GET", "/push_subscriptions", params=self._credentials)
        result: list[dict[str, Any]] = response.json()
        return result

    def create(self, callback_url: str, verify_token: str) -> int:
        """Subscribe; Strava validates the callback before this returns."""
        form = {
            **self._credentials,
            "callback_url": callback_url,
            "verify_token": verify_token,
        }
        response = self._send("POST", "/push_subscriptions", data=form)
        return int(response.json()["id"])

    def delete(self, subscription_id: int) -> None:
        """Remove the subscription; a missing one is fine."""
        try:
            self._send(
                "DELETE",
                f"/push_subscriptions/{subscription_id}",
                params=self._credentials,
            )
        except NotFound:
            return

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StravaUnavailable(
                f"Strava could not be reached for {method} {path}: "
                f"{type(exc).__name__}. Check STRAVA_API_URL and the network."
            ) from None
        if response.status_code >= 400:
            raise _subscription_error(response, method)
        return response


def _subscription_error(response: httpx.Response, method: str) -> StravaError:
    status = response.status_code
    detail = _error_detail(response)
    if status in (401, 403):
        return AuthorizationError(
            f"Strava refused the app's credentials ({detail}): check "
            "STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET.",
            status,
        )
    if status == 404:
        return NotFound("Strava has no such webhook subscription (HTTP 404).", status)
    if status >= 500:
        return StravaUnavailable(f"Strava failed on {method} (HTTP {status}).", status)
    return StravaError(f"Strava refused the subscription request: {detail}.", status)


def _error_detail(response: httpx.Response) -> str:
    """Strava's errors as 'field: code' phrases; the status when unreadable."""
    try:
        body = response.json()
        errors = body.get("errors") or []
        parts = [
            " ".join(filter(None, [e.get("resource"), e.get("field"), e.get("code")]))
            for e in errors
            if isinstance(e, dict)
        ]
        return "; ".join(parts) or str(body.get("message") or "")
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
