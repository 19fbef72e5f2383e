"""Who may use the pages: Directus users, as Directus itself says.

There are two doors. A browser already logged in to Directus on the same host
sends Directus's session cookie along; we forward it to Directus and ask who
it is. Any other browser logs in through our form: the password goes to
Directus once and only the answer (user id, name, admin or not) is kept, in
our own signed cookie. Both doors share one check of the user's role.

Our cookie also carries a random nonce from the first visit on, even before a
login, so every form (the login form too) can carry a CSRF token derived
from it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from directus_strava.directus import DirectusClient
from directus_strava.errors import AccessDenied, DirectusError, DirectusUnavailable
from directus_strava.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "directus_strava_session"
SESSION_SECONDS = 12 * 3600
# Directus's answer about a session cookie is reused this long, so a page and
# its fragments do not each cost two requests to Directus.
CACHE_SECONDS = 30
CACHE_SIZE = 256
USER_FIELDS = "id,email,first_name,last_name,role.id,role.name"


@dataclass(frozen=True)
class Visitor:
    """A Directus user allowed in."""

    user_id: str
    name: str
    admin: bool


@dataclass
class Session:
    """What our signed cookie holds; `changed` means it must be sent again."""

    nonce: str
    visitor: Visitor | None = None
    expires: float = 0.0
    changed: bool = False


@dataclass(frozen=True)
class Answer:
    """Directus's verdict on a session cookie, cached briefly."""

    at: float
    visitor: Visitor | None
    denial: str | None


class Doorkeeper:
    """Checks visitors against Directus and keeps our own session cookie."""

    def __init__(self, settings: Settings) -> None:
        self.directus_url = settings.directus()
        self.cookie_name = settings.directus_session_cookie
        self.roles = settings.roles()
        secret = settings.service_secret_key.get_secret_value()
        self._signer = URLSafeTimedSerializer(secret, salt="directus-strava/session")
        self._csrf_key = hashlib.sha256(b"csrf:" + secret.encode()).digest()
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()

    # Our own cookie ---------------------------------------------------------

    def session(self, cookie: str | None) -> Session:
        """The session in a cookie, or a fresh anonymous one."""
        try:
            data = self._signer.loads(cookie or "", max_age=SESSION_SECONDS)
        except BadSignature:
            return Session(secrets.token_urlsafe(18), changed=True)
        visitor = Visitor(**data["visitor"]) if data.get("visitor") else None
        if visitor is not None and data["expires"] < time.time():
            return Session(secrets.token_urlsafe(18), changed=True)
        return Session(data["nonce"], visitor, data["expires"])

    def seal(self, session: Session) -> str:
        """The signed cookie value for a session."""
        visitor = session.visitor.__dict__ if session.visitor else None
        data = {"nonce": session.nonce, "visitor": visitor, "expires": session.expires}
        return str(self._signer.dumps(data))

    def enter(self, session: Session, visitor: Visitor) -> None:
        """Log a visitor in: a new nonce, so a planted cookie is worth nothing."""
        session.nonce = secrets.token_urlsafe(18)
        session.visitor = visitor
        session.expires = time.time() + SESSION_SECONDS
        session.changed = True

    def leave(self, session: Session) -> None:
        """Log out: forget the visitor and the nonce."""
        session.nonce = secrets.token_urlsafe(18)
        session.visitor = None
        session.expires = 0.0
        session.changed = True

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session carries."""
        mac = hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_ok(self, session: Session, token: str) -> bool:
        """True when a submitted token belongs to this session."""
        # As bytes: compare_digest refuses str with non-ASCII characters.
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())

    # Directus ---------------------------------------------------------------

    def visitor(self, session: Session, directus_cookie: str | None) -> Visitor:
        """The allowed visitor behind a request, or AccessDenied."""
        if session.visitor is not None:
            return session.visitor
        if not directus_cookie:
            raise AccessDenied("Log in with your Directus account to continue.")
        answer = self._cookie_answer(directus_cookie)
        if answer.visitor is None:
            raise AccessDenied(answer.denial or "Log in to continue.")
        return answer.visitor

    def login(self, email: str, password: str, otp: str = "") -> Visitor:
        """Check an email and password with Directus; the password is not kept."""
        body = {"email": email, "password": password, "mode": "json"}
        if otp:
            body["otp"] = otp
        with closing(DirectusClient(self.directus_url, timeout=20)) as anonymous:
            grant = self._ask_login(anonymous, body)
        with closing(
            DirectusClient(self.directus_url, grant["access_token"], 20)
        ) as user:
            try:
                return self._who(user)
            finally:
                _quietly(user, "/auth/logout", grant["refresh_token"])

    def logout_directus(self, directus_cookie: str) -> None:
        """End a Directus browser session too, and forget its cached answer."""
        with self._lock:
            self._answers.pop(_digest(directus_cookie), None)
        cookies = {self.cookie_name: directus_cookie}
        with closing(self._client(cookies)) as user:
            _quietly(user, "/auth/logout", None)

    def _client(self, cookies: dict[str, str]) -> DirectusClient:
        return DirectusClient(self.directus_url, timeout=20, cookies=cookies)

    def _cookie_answer(self, directus_cookie: str) -> Answer:
        key = _digest(directus_cookie)
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and time.monotonic() - cached.at < CACHE_SECONDS:
            return cached
        answer = self._ask_about(directus_cookie)
        with self._lock:
            if len(self._answers) >= CACHE_SIZE:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _ask_about(self, directus_cookie: str) -> Answer:
        cookies = {self.cookie_name: directus_cookie}
        with closing(self._client(cookies)) as user:
            try:
                return Answer(time.monotonic(), self._who(user), None)
            except AccessDenied as exc:
                return Answer(time.monotonic(), None, str(exc))
            except DirectusUnavailable:
                raise
            except DirectusError:
                # An expired or foreign cookie: the visitor must log in again.
                return Answer(time.monotonic(), None, None)

    def _ask_login(self, client: DirectusClient, body: dict[str, str]) -> Any:
        try:
            return client.request("POST", "/auth/login", json=body)
        except DirectusUnavailable:
            raise
        except DirectusError:
            log.info("event=login_refused")
            raise AccessDenied(
                "Directus did not accept this email and password (or the "
                "one-time code): check them and try again."
            ) from None

    def _who(self, user: DirectusClient) -> Visitor:
        me = user.request("GET", "/users/me", params={"fields": USER_FIELDS})
        flags = user.request("GET", "/policies/me/globals") or {}
        return self._decide(me, bool(flags.get("admin_access")))

    def _decide(self, me: dict[str, Any], admin: bool) -> Visitor:
        role = me.get("role") or {}
        names = {str(role.get("id")), str(role.get("name"))} if role else set()
        if not admin and not names & self.roles:
            log.info("event=access_denied user=%s", me.get("id"))
            raise AccessDenied(
                f"Your Directus account ({me.get('email') or me.get('id')}) is "
                "not an admin and its role is not listed in ALLOWED_ROLES: ask "
                "an admin to add your role there."
            )
        name = " ".join(filter(None, [me.get("first_name"), me.get("last_name")]))
        return Visitor(str(me["id"]), name or str(me.get("email") or ""), admin)


def _quietly(client: DirectusClient, path: str, refresh_token: str | None) -> None:
    # Ending a Directus session is a courtesy: failing to do so changes nothing
    # for us, since we never use that session again.
    body = {"refresh_token": refresh_token, "mode": "json"} if refresh_token else {}
    try:
        client.request("POST", path, json=body or {"mode": "session"})
    except DirectusError:
        log.debug("event=directus_logout_failed")


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
