"""Who gets in, what a forged request gets, and what is kept at rest.

The real web app serves over real HTTP on loopback against the session's
SQLite Directus and a Strava simulator; requests are plain httpx, so every
status code and header is what a browser would receive. The worker is not
started (`background=False`): these tests look at the doors, not the work.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

import secret_watch
from directus_strava import cli
from directus_strava.access import SESSION_COOKIE
from directus_strava.directus import DirectusClient
from directus_strava.errors import SecretKeyError
from directus_strava.schema import setup as setup_schema
from directus_strava.service import Service
from directus_strava.web import create_app
from local_directus import Instance
from served import serve
from strava_flow import consent, settings_for
from strava_simulator import RunningSimulator, SimulatorConfig, running

pytestmark = pytest.mark.directus

COLLECTION = "security_activities"
ROLE = "Reviewers"
NAMES = itertools.count()


@dataclass
class Person:
    """A Directus user the tests log in as."""

    email: str
    password: str


@dataclass
class Door:
    """A served app, its service and the people who knock."""

    url: str
    service: Service
    directus: Instance
    admin: Person
    reviewer: Person
    sim: RunningSimulator


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running(SimulatorConfig(seed=9, activities=2)) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def reviewer(directus_sqlite: Instance) -> Person:
    """A Directus user with app access whose role is not an admin's."""
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    person = Person(f"reviewer{secrets.token_hex(3)}@example.org", _password())
    role = admin.request("POST", "/roles", json={"name": ROLE})
    policy = admin.request(
        "POST", "/policies", json={"name": ROLE, "app_access": True, "icon": "badge"}
    )
    admin.request("POST", "/access", json={"role": role["id"], "policy": policy["id"]})
    body = {"email": person.email, "password": person.password, "role": role["id"]}
    admin.request("POST", "/users", json=body)
    admin.close()
    return person


def _password() -> str:
    password = "pw-" + secrets.token_urlsafe(16)
    secret_watch.plant("a Directus user's password", password)
    return password


@pytest.fixture(scope="module")
def admin_person(directus_sqlite: Instance) -> Person:
    return Person(directus_sqlite.admin_email, directus_sqlite.admin_password)


def _door(
    sim: RunningSimulator,
    directus: Instance,
    data: Path,
    people: tuple[Person, Person],
    **more: Any,
) -> Iterator[Door]:
    admin = DirectusClient(directus.url, directus.admin_token)
    setup_schema(admin, COLLECTION)
    admin.close()
    settings = settings_for(sim, directus.url, directus.admin_token, data,
                            directus_collection=COLLECTION, **more)  # fmt: skip
    service = Service.build(settings)
    with serve(create_app(service, background=False)) as url:
        yield Door(url, service, directus, *people, sim)
    service.close()


@pytest.fixture(scope="module")
def door(
    sim: RunningSimulator,
    directus_sqlite: Instance,
    admin_person: Person,
    reviewer: Person,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Door]:
    data = tmp_path_factory.mktemp("security")
    yield from _door(sim, directus_sqlite, data, (admin_person, reviewer))


@pytest.fixture(scope="module")
def open_door(
    sim: RunningSimulator,
    directus_sqlite: Instance,
    admin_person: Person,
    reviewer: Person,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Door]:
    """The service behind HTTPS (as its public URL says), reviewers allowed."""
    data = tmp_path_factory.mktemp("security-https")
    yield from _door(sim, directus_sqlite, data, (admin_person, reviewer),
                     allowed_roles=ROLE,
                     service_public_url="https://127.0.0.1:8443")  # fmt: skip


class Browser:
    """Cookies and the CSRF token, carried by hand (Secure cookies too)."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self.http = httpx.Client(base_url=door.url, follow_redirects=False)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self._keep(self.http.get(path, headers=self._headers(headers)))

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
        answer = self.http.post(path, data=data, headers=self._headers(headers))
        return self._keep(answer)

    def log_in(self, person: Person) -> httpx.Response:
        self.get("/login")
        form = {"email": person.email, "password": person.password}
        return self.post("/login", {**form, "csrf": self.csrf})

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {**({"cookie": jar} if jar else {}), **extra}

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        for header in answer.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', answer.text)
        self.csrf = found.group(1) if found else self.csrf
        return answer


# --- Who gets in ----------------------------------------------------------------

GET_PAGES = ["/", "/activities", "/fragments/queue", "/fragments/activities",
             "/oauth/callback?code=x&state=y"]  # fmt: skip
POST_PAGES = ["/logout", "/activities/refresh", "/activities/import", "/connect",
              "/disconnect", "/queue/retry", "/subscription"]  # fmt: skip


def _stranger(door: Door) -> Browser:
    browser = Browser(door)
    browser.get("/login")  # a session nonce, so forms carry a valid CSRF token
    return browser


def _directus_session(door: Door, user: Person) -> str:
    """The session cookie Directus's own login gives `user`."""
    login = httpx.post(
        door.directus.url + "/auth/login",
        json={"email": user.email, "password": user.password, "mode": "session"},
    )
    login.raise_for_status()
    return str(login.cookies["directus_session_token"])


def _ended_directus_session(door: Door) -> Browser:
    browser = _stranger(door)
    cookie = _directus_session(door, door.admin)
    httpx.post(
        door.directus.url + "/auth/logout",
        json={"mode": "session"},
        cookies={"directus_session_token": cookie},
    ).raise_for_status()
    browser.cookies["directus_session_token"] = cookie
    return browser


def _forged_cookie(door: Door) -> Browser:
    browser = _stranger(door)
    browser.cookies[SESSION_COOKIE] = "eyJub25jZSI6IngifQ.forged.signature"
    return browser


def _reviewer(door: Door) -> Browser:
    browser = _stranger(door)
    refused = browser.log_in(door.reviewer)
    assert refused.status_code == 401
    assert "not an admin and its role is not listed in ALLOWED_ROLES" in refused.text
    return browser


_REFUSALS = re.compile(
    "Log in with your Directus account|Log in to continue|ALLOWED_ROLES|"
    "This form did not come from this site"
)


def _reviewer_directus_cookie(door: Door) -> Browser:
    browser = _stranger(door)
    browser.cookies["directus_session_token"] = _directus_session(door, door.reviewer)
    fragment = browser.get("/fragments/queue", **{"hx-request": "true"})
    assert "its role is not listed in ALLOWED_ROLES" in fragment.text
    return browser


VISITORS = {
    "anonymous": _stranger,
    "ended Directus session": _ended_directus_session,
    "forged service cookie": _forged_cookie,
    "role not allowed": _reviewer,
    "role not allowed, Directus cookie": _reviewer_directus_cookie,
}


@pytest.mark.parametrize("visitor", VISITORS.values(), ids=VISITORS.keys())
def test_every_page_refuses_a_visitor_who_may_not_enter(
    door: Door, visitor: Any
) -> None:
    browser = visitor(door)
    for path in GET_PAGES:
        answer = browser.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next="), path
        fragment = browser.get(path, **{"hx-request": "true"})
        assert fragment.status_code == 401, path
    for path in POST_PAGES:
        answer = browser.post(path, {"csrf": browser.csrf, "page": "1"})
        # 403 when a forged cookie also voids the CSRF token, else 401.
        assert answer.status_code in (401, 403), path
        assert _REFUSALS.search(answer.text), path
    assert door.service.queue.counts()["waiting"] == 0
    assert door.service.tokens.connected() == []


def test_health_and_webhook_stay_open(door: Door) -> None:
    assert httpx.get(door.url + "/health").status_code in (200, 503)
    answer = httpx.post(door.url + "/webhook/" + "0" * 40, json={})
    assert answer.status_code == 404  # reached the webhook door, not the login


def test_an_allowed_role_gets_in_when_configured(open_door: Door) -> None:
    browser = Browser(open_door)
    answer = browser.log_in(open_door.reviewer)
    assert answer.status_code == 303
    assert browser.get("/").status_code == 200


# --- Cookies and cross-site requests ----------------------------------------------


def _session_cookie(answer: httpx.Response) -> str:
    return next(
        header
        for header in answer.headers.get_list("set-cookie")
        if header.startswith(SESSION_COOKIE + "=")
    )


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_https(
    door: Door, open_door: Door
) -> None:
    plain = _session_cookie(httpx.get(door.url + "/login")).lower()
    assert "httponly" in plain
    assert "samesite=lax" in plain
    assert "secure" not in plain  # a browser would drop it on plain HTTP
    behind_tls = _session_cookie(httpx.get(open_door.url + "/login")).lower()
    assert "httponly" in behind_tls
    assert "samesite=lax" in behind_tls
    assert "; secure" in behind_tls


def _with_csrf(browser: Browser) -> dict[str, str]:
    return {"csrf": browser.csrf}


CROSS_SITE: list[tuple[str, dict[str, str], bool, int]] = [
    ("foreign Origin", {"origin": "http://127.0.0.1:9"}, True, 403),
    ("foreign Referer", {"referer": "http://evil.test/page"}, True, 403),
    ("no CSRF token", {}, False, 403),
    ("own origin with token", {}, True, 303),
]


@pytest.mark.parametrize(
    ("headers", "token", "status"),
    [case[1:] for case in CROSS_SITE],
    ids=[case[0] for case in CROSS_SITE],
)
def test_cross_site_posts_are_rejected(
    door: Door, headers: dict[str, str], token: bool, status: int
) -> None:
    browser = Browser(door)
    assert browser.log_in(door.admin).status_code == 303
    browser.get("/activities")
    form = {"page": "1", **({"csrf": browser.csrf} if token else {})}
    answer = browser.post("/activities/refresh", form, **headers)
    assert answer.status_code == status
    if status == 403:
        assert "This form did not come from this site." in answer.text


# --- The OAuth callback page ----------------------------------------------------------


def _consent_params(browser: Browser, **kwargs: Any) -> dict[str, str]:
    answer = browser.post("/connect", {"csrf": browser.csrf})
    assert answer.status_code == 303
    return consent(answer.headers["location"], **kwargs)


def _callback(browser: Browser, params: dict[str, str]) -> httpx.Response:
    return browser.get("/oauth/callback?" + httpx.QueryParams(params).__str__())


CALLBACK_PAGES: list[tuple[str, Any, int, str]] = [
    ("forged state", lambda p, b: {**p, "state": "forged"}, 400, "state mismatch"),
    ("missing state", lambda p, b: {k: v for k, v in p.items() if k != "state"},
     400, "state mismatch"),
    ("reused code", lambda p, b: _reuse(p, b), 502, "already used"),
]  # fmt: skip


def _reuse(params: dict[str, str], browser: Browser) -> dict[str, str]:
    assert _callback(browser, params).status_code == 200
    state = _consent_params(browser)["state"]
    return {**params, "state": state}


@pytest.mark.parametrize(
    ("spoil", "status", "message"),
    [case[1:] for case in CALLBACK_PAGES],
    ids=[case[0] for case in CALLBACK_PAGES],
)
def test_a_bad_callback_gets_a_page_that_says_why(
    door: Door, spoil: Any, status: int, message: str
) -> None:
    browser = Browser(door)
    browser.log_in(door.admin)
    browser.get("/")
    params = spoil(_consent_params(browser), browser)
    answer = _callback(browser, params)
    assert answer.status_code == status
    assert message in answer.text
    assert params.get("code", "-") not in answer.text


def test_declined_access_and_private_scope_on_the_callback_page(door: Door) -> None:
    browser = Browser(door)
    browser.log_in(door.admin)
    browser.get("/")
    denied = _callback(browser, _consent_params(browser, decision="deny"))
    assert denied.status_code == 400
    assert "You declined the connection" in denied.text
    browser.get("/")
    private = _consent_params(browser, untick=("activity:read_all",))
    answer = _callback(browser, private)
    assert answer.status_code == 200
    assert "did not allow private activities" in answer.text


# --- Tokens at rest ----------------------------------------------------------------


def _connected(door: Door) -> int:
    browser = Browser(door)
    browser.log_in(door.admin)
    browser.get("/")
    assert _callback(browser, _consent_params(browser)).status_code == 200
    return int(door.service.tokens.connected()[0]["id"])


def test_tokens_are_encrypted_at_rest(door: Door) -> None:
    athlete = _connected(door)
    access = door.service.tokens.access_token(athlete)
    row = door.service.store.db.execute(
        "SELECT refresh_token FROM athletes WHERE id = ?", (athlete,)
    ).fetchone()
    refresh = door.service.tokens.vault.open(row["refresh_token"])
    data = door.service.settings.service_data_dir
    stored = b"".join(path.read_bytes() for path in data.glob("*sqlite3*"))
    assert len(access) >= 20
    assert len(refresh) >= 20
    assert access.encode() not in stored
    assert refresh.encode() not in stored


def test_a_wrong_secret_key_is_a_clear_error(door: Door) -> None:
    if not door.service.tokens.connected():
        _connected(door)
    settings = door.service.settings.model_copy(
        update={"service_secret_key": SecretStr("another-key-" + "k" * 32)}
    )
    with pytest.raises(SecretKeyError, match="cannot be decrypted with this"):
        Service.build(settings)
    env = {
        "STRAVA_CLIENT_ID": str(settings.strava_client_id),
        "STRAVA_CLIENT_SECRET": settings.strava_client_secret.get_secret_value(),
        "DIRECTUS_URL": settings.directus(),
        "DIRECTUS_TOKEN": settings.directus_token.get_secret_value(),
        "SERVICE_SECRET_KEY": "another-key-" + "k" * 32,
        "SERVICE_DATA_DIR": str(settings.service_data_dir),
    }
    result = CliRunner().invoke(cli.cli, ["status"], env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: Stored Strava tokens cannot be decrypted")
    assert "Traceback" not in result.output
