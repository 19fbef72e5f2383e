"""Connecting athletes: Strava's OAuth flow and their tokens at rest.

Authlib speaks OAuth 2; this module adds Strava's habits: comma-separated
scopes, scopes the user may untick, and refresh tokens that rotate and die at
once, so a refresh is serialised per athlete and persisted before use.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # noqa: F401  (installs authlib's own filter first)
import httpx

from directus_strava.clock import Clock
from directus_strava.errors import AuthorizationError, OAuthError, StravaUnavailable
from directus_strava.store import Store
from directus_strava.vault import Vault

with warnings.catch_warnings():
    # Authlib nudges towards the httpx2 fork; httpx is what this project pins.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

log = logging.getLogger(__name__)

SCOPES = ("read", "activity:read_all", "activity:read")
# Refresh when less than this is left, so a token never expires mid-import.
REFRESH_MARGIN = 15 * 60
STATE_TTL = 15 * 60


@dataclass(frozen=True)
class Connection:
    """An athlete just connected, with what they granted."""

    athlete_id: int
    name: str
    scopes: frozenset[str]

    @property
    def private_declined(self) -> bool:
        """True when Only Me activities will be missing."""
        return "activity:read_all" not in self.scopes

    def advice(self) -> str:
        """A sentence for the user about what their choice of scopes means."""
        if self.private_declined:
            return (
                "You did not allow private activities (View data about your "
                "private activities): activities visible only to you will not be "
                "imported. Connect again and tick that box to include them."
            )
        return "All your activities, private ones included, will be imported."


class StravaOAuth:
    """Strava's authorization and token endpoints."""

    def __init__(
        self, client_id: int, client_secret: str, web_url: str, timeout: float = 20
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.timeout = timeout

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """Where to send the user to grant access."""
        client = self._client(redirect_uri)
        url, _ = client.create_authorization_url(
            f"{self.web_url}/oauth/authorize",
            state=state,
            approval_prompt="auto",
        )
        return str(url)

    def exchange(self, code: str, redirect_uri: str) -> dict[str, Any]:
        """Trade an authorization code for the first token pair."""
        with self._client(redirect_uri) as client:
            return self._call(
                lambda: client.fetch_token(
                    f"{self.web_url}/oauth/token",
                    code=code,
                    grant_type="authorization_code",
                ),
                "exchange the authorization code",
            )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Trade a refresh token for a (possibly rotated) token pair."""
        with self._client(None) as client:
            return self._call(
                lambda: client.refresh_token(
                    f"{self.web_url}/oauth/token", refresh_token=refresh_token
                ),
                "refresh the access token",
            )

    def deauthorize(self, access_token: str) -> None:
        """Revoke the app's access for the athlete owning `access_token`."""
        try:
            httpx.post(
                f"{self.web_url}/oauth/deauthorize",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise StravaUnavailable(f"Strava could not be reached: {exc}") from None

    def _client(self, redirect_uri: str | None) -> OAuth2Client:
        return OAuth2Client(
            client_id=str(self.client_id),
            client_secret=self._secret,
            scope=",".join(SCOPES),
            redirect_uri=redirect_uri,
            token_endpoint_auth_method="client_secret_post",
            timeout=self.timeout,
        )

    def _call(self, request: Any, doing: str) -> dict[str, Any]:
        try:
            grant = dict(request())
        except AuthlibOAuthError as exc:
            raise AuthorizationError(
                f"Strava refused to {doing} ({exc.error}): connect the athlete "
                "again with `directus-strava connect` or the Connect button."
            ) from None
        except httpx.HTTPStatusError as exc:
            raise _status_error(exc.response.status_code, doing) from None
        except httpx.HTTPError as exc:
            raise StravaUnavailable(
                f"Strava could not be reached to {doing}: {type(exc).__name__}. "
                "Check STRAVA_WEB_URL and the network, then retry."
            ) from None
        if "access_token" not in grant:
            # Strava's 4xx bodies carry no OAuth `error` member, so authlib
            # hands them back as if they were a grant (a reused code does this).
            raise AuthorizationError(
                f"Strava refused to {doing} ({_refusal(grant)}): the code or "
                "token is invalid or was already used; connect the athlete "
                "again with `directus-strava connect` or the Connect button."
            )
        return grant


def _refusal(body: dict[str, Any]) -> str:
    errors = body.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    parts = [str(first.get(k)) for k in ("resource", "field", "code") if first.get(k)]
    return " ".join(parts) or str(body.get("message") or "no token in the answer")


def _status_error(status: int, doing: str) -> Exception:
    if status >= 500:
        return StravaUnavailable(f"Strava failed to {doing} (HTTP {status}).")
    return AuthorizationError(
        f"Strava refused to {doing} (HTTP {status}): check STRAVA_CLIENT_ID and "
        "STRAVA_CLIENT_SECRET, then connect again.",
        status=status,
    )


class Tokens:
    """Athletes' tokens, encrypted at rest and refreshed before they expire."""

    def __init__(
        self, store: Store, vault: Vault, oauth: StravaOAuth, clock: Clock
    ) -> None:
        self.store = store
        self.vault = vault
        self.oauth = oauth
        self.clock = clock
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def begin(self, redirect_uri: str, return_to: str = "") -> str:
        """Start a connection: remember a fresh state, return the consent URL."""
        state = secrets.token_urlsafe(24)
        record = {"at": self.clock.now(), "redirect": redirect_uri, "next": return_to}
        self.store.put(f"oauth_state:{state}", json.dumps(record))
        return self.oauth.authorize_url(redirect_uri, state)

    def finish(self, params: dict[str, str]) -> tuple[Connection, str]:
        """Complete a connection from the callback's query; returns where to go."""
        record = self._take_state(params.get("state", ""))
        if params.get("error"):
            raise OAuthError(
                "You declined the connection on Strava (access_denied); nothing "
                "was stored. Connect again and choose Authorize to import."
            )
        scopes = frozenset(filter(None, params.get("scope", "").split(",")))
        if not scopes & {"activity:read", "activity:read_all"}:
            raise OAuthError(
                "Strava did not grant access to your activities: connect again "
                "and leave 'View data about your activities' ticked."
            )
        grant = self.oauth.exchange(params.get("code", ""), record["redirect"])
        return self._save(grant, scopes), str(record.get("next", ""))

    def access_token(self, athlete_id: int) -> str:
        """A valid access token, refreshed first when it expires soon."""
        row = self._row(athlete_id)
        if row["expires_at"] - self.clock.now() > REFRESH_MARGIN:
            return self.vault.open(row["access_token"])
        with self._lock_for(athlete_id):
            return self._refresh(athlete_id)

    def forget(self, athlete_id: int) -> None:
        """Drop an athlete's tokens (after deauthorization or disconnect)."""
        self.store.db.execute(
            "UPDATE athletes SET access_token = NULL, refresh_token = NULL, "
            "token_status = 'revoked' WHERE id = ?",
            (athlete_id,),
        )

    def connected(self) -> list[dict[str, Any]]:
        """Every athlete the service knows, without their tokens."""
        rows = self.store.db.execute(
            "SELECT id, name, scopes, expires_at, token_status, connected_at "
            "FROM athletes ORDER BY connected_at"
        )
        return [dict(row) for row in rows]

    def _refresh(self, athlete_id: int) -> str:
        # Re-read under the database lock: another thread or process may have
        # refreshed while we waited, and its refresh token replaced ours.
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT * FROM athletes WHERE id = ?", (athlete_id,)
            ).fetchone()
            if row["expires_at"] - self.clock.now() > REFRESH_MARGIN:
                return self.vault.open(row["access_token"])
            try:
                grant = self.oauth.refresh(self.vault.open(row["refresh_token"]))
            except AuthorizationError:
                db.execute(
                    "UPDATE athletes SET token_status = 'refused' WHERE id = ?",
                    (athlete_id,),
                )
                raise
            db.execute(
                "UPDATE athletes SET access_token = ?, refresh_token = ?, "
                "expires_at = ?, token_status = 'ok' WHERE id = ?",
                (
                    self.vault.seal(grant["access_token"]),
                    self.vault.seal(grant["refresh_token"]),
                    int(grant["expires_at"]),
                    athlete_id,
                ),
            )
        log.info("event=token_refreshed athlete=%s", athlete_id)
        return str(grant["access_token"])

    def _save(self, grant: dict[str, Any], scopes: frozenset[str]) -> Connection:
        athlete = grant.get("athlete") or {}
        athlete_id = int(athlete["id"])
        name = " ".join(
            filter(None, [athlete.get("firstname"), athlete.get("lastname")])
        )
        self.store.db.execute(
            "INSERT INTO athletes(id, name, scopes, access_token, refresh_token, "
            "expires_at, connected_at, token_status) VALUES (?,?,?,?,?,?,?,'ok') "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
            "scopes = excluded.scopes, access_token = excluded.access_token, "
            "refresh_token = excluded.refresh_token, "
            "expires_at = excluded.expires_at, token_status = 'ok'",
            (
                athlete_id,
                name,
                ",".join(sorted(scopes)),
                self.vault.seal(grant["access_token"]),
                self.vault.seal(grant["refresh_token"]),
                int(grant["expires_at"]),
                self.clock.now(),
            ),
        )
        log.info("event=athlete_connected athlete=%s scopes=%s", athlete_id, scopes)
        return Connection(athlete_id, name, scopes)

    def _take_state(self, state: str) -> dict[str, Any]:
        raw = self.store.get(f"oauth_state:{state}") if state else None
        if raw is None:
            raise OAuthError(
                "This connection attempt is unknown or was already used (state "
                "mismatch): start again from the Connect button."
            )
        self.store.put(f"oauth_state:{state}", None)
        record: dict[str, Any] = json.loads(raw)
        if self.clock.now() - record["at"] > STATE_TTL:
            raise OAuthError("This connection attempt expired: start again.")
        return record

    def _row(self, athlete_id: int) -> Any:
        row = self.store.db.execute(
            "SELECT * FROM athletes WHERE id = ?", (athlete_id,)
        ).fetchone()
        if row is None or row["access_token"] is None:
            raise AuthorizationError(
                f"Athlete {athlete_id} is not connected: connect them with "
                "`directus-strava connect` or the Connect button."
            )
        return row

    def _lock_for(self, athlete_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(athlete_id, threading.Lock())
