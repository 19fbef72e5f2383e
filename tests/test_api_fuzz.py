"""Schemathesis over the service's HTTP API, as described in docs/openapi.yaml.

The service runs on loopback against the SQLite Directus and the Strava
simulator, with one athlete connected and a webhook subscription in place.
Every operation in the description is fuzzed twice: logged in (with the
session's CSRF token and our own origin, so the page itself runs) and
anonymously (where every page behind the login must turn the request away).
A test fails on any 500, on a status code or content type the description
does not list, and on a 502/503 that is not our explained error page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import content_type_conformance, status_code_conformance
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.routing import Mount, Route

from directus_strava import webhooks
from directus_strava.access import SESSION_COOKIE
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup as setup_schema
from directus_strava.service import Service
from directus_strava.web import create_app
from directus_strava.webhooks import SUBSCRIPTION_KEY
from local_directus import Instance
from served import free_port, serve
from strava_flow import connect, settings_for
from strava_simulator import SimulatorConfig
from strava_simulator import running as simulator_running

pytestmark = pytest.mark.directus

SPEC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
COLLECTION = "fuzz_test_activities"
# Pages anyone may open; everything else must turn an anonymous visitor away.
OPEN = {"/health", "/login", "/webhook/{secret}", "/static/{name}"}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@dataclass
class Api:
    """The running service and what a logged-in browser would hold."""

    url: str
    cookies: dict[str, str]
    csrf: str
    secret: str
    paths: set[str]
    service: Service

    def subscription_id(self) -> int:
        """The subscription the service knows now (the fuzz may replace it)."""
        return int(self.service.store.get(SUBSCRIPTION_KEY) or 0)


@pytest.fixture(scope="module")
def api(
    directus_sqlite: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    setup_schema(admin, COLLECTION)
    admin.close()
    port = free_port()
    with simulator_running(SimulatorConfig(seed=5, activities=4)) as strava:
        settings_ = settings_for(
            strava,
            directus_sqlite.url,
            directus_sqlite.admin_token,
            tmp_path_factory.mktemp("fuzz"),
            directus_collection=COLLECTION,
            service_public_url=f"http://127.0.0.1:{port}",
        )
        service = Service.build(settings_)
        connect(service)
        app = create_app(service, background=False)
        with serve(app, port) as url:
            service.subscriptions.create()
            secret = webhooks.path_secret(settings_)
            known = _logged_in(url, directus_sqlite)
            yield Api(url, *known, secret, _paths(app.routes), service)
        service.close()


def _paths(routes: list[Any]) -> set[str]:
    paths = set()
    for route in routes:
        if isinstance(route, Mount):
            paths.add(route.path + "/{name}")
        elif isinstance(route, Route):
            paths.add(route.path)
    return paths


def _logged_in(url: str, directus: Instance) -> tuple[dict[str, str], str]:
    """The session cookie and CSRF token of a browser that logged in."""
    with httpx.Client(base_url=url) as browser:
        form = browser.get("/login")
        csrf = _csrf(form.text)
        answer = browser.post(
            "/login",
            data={
                "csrf": csrf,
                "email": directus.admin_email,
                "password": directus.admin_password,
            },
        )
        assert answer.status_code == 303, answer.text
        cookies = {SESSION_COOKIE: browser.cookies[SESSION_COOKIE]}
        csrf = _csrf(browser.get("/").text)
    return cookies, csrf


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _described() -> OpenApiSchema:
    described = schemathesis.openapi.from_path(SPEC)
    described.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    )
    return described


schema = _described()


def no_crash(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 500, and a 502/503 only as our page saying what failed."""
    status = response.status_code
    assert status != 500, f"internal error: {response.text[:500]}"
    if status in (502, 503) and case.operation.path != "/health":
        assert "Something went wrong" in response.text, response.text[:500]
    return None


def _call(case: Case, api: Api, logged_in: bool) -> Any:
    if "secret" in (case.path_parameters or {}):
        case.path_parameters = {"secret": api.secret}
        # Half the events name the real subscription, so that the rest of
        # the event is read too, not only refused for an unknown one.
        body = case.body
        if isinstance(body, dict) and hash(repr(body)) % 2:
            case.body = dict(body, subscription_id=api.subscription_id())
    headers = {"Origin": api.url}
    cookies: dict[str, str] = {}
    if logged_in:
        cookies = dict(api.cookies)
        if isinstance(case.body, dict) and case.operation.method == "post":
            case.body = dict(case.body, csrf=api.csrf)
    return case.call(
        base_url=api.url, headers=headers, cookies=cookies, allow_redirects=False
    )


@schema.parametrize()
@FUZZ
def test_logged_in_requests_never_crash(case: Case, api: Api) -> None:
    response = _call(case, api, logged_in=True)
    case.validate_response(
        response, checks=[no_crash, status_code_conformance, content_type_conformance]
    )
    if case.operation.path in OPEN:
        return
    # The session held, so the page itself answered, not the door.
    assert response.status_code != 401, response.text[:300]
    if response.status_code == 303 and case.operation.path != "/logout":
        (location,) = response.headers["location"]
        assert not location.startswith("/login"), location


@schema.parametrize()
@FUZZ
def test_anonymous_requests_are_turned_away(case: Case, api: Api) -> None:
    response = _call(case, api, logged_in=False)
    case.validate_response(response, checks=[no_crash, status_code_conformance])
    if case.operation.path not in OPEN:
        # 400: a body that is no form, refused before anyone is asked who
        # they are; 405: a method the path does not have.
        assert response.status_code in (303, 400, 401, 403, 405), response.text[:300]
        if response.status_code == 303:
            (location,) = response.headers["location"]
            assert location.startswith("/login?next="), location


def test_description_lists_every_route(api: Api) -> None:
    """docs/openapi.yaml and the app's routes name the same paths."""
    assert api.paths == set(schema.raw_schema["paths"])


# Numbers in forms and queries that str.isdigit() accepts but int() or SQLite
# do not, and others that are no positive whole number.
NOT_COUNTS = ["²", "١٢", "99999999999999999999", "-1", "0", "1.5", " 7", "", "0x1f"]
FORM_NUMBERS = [
    ("get", "/activities", "page"),
    ("get", "/activities", "per_page"),
    ("get", "/fragments/activities", "page"),
    ("post", "/activities/refresh", "per_page"),
    ("post", "/activities/import", "one"),
    ("post", "/activities/import", "activity"),
    ("post", "/disconnect", "athlete"),
    ("post", "/queue/retry", "job"),
]


@pytest.mark.parametrize(("method", "path", "name"), FORM_NUMBERS)
def test_numbers_that_are_not_counts_fall_back_to_defaults(
    api: Api, method: str, path: str, name: str
) -> None:
    with httpx.Client(base_url=api.url, cookies=api.cookies) as browser:
        for value in NOT_COUNTS:
            if method == "get":
                answer = browser.get(path, params={name: value})
            else:
                form = {"csrf": api.csrf, name: value}
                answer = browser.post(path, data=form, headers={"Origin": api.url})
            assert answer.status_code in (200, 303), (value, answer.text[:300])
