"""The web pages, driven through Debian's Chromium against a real Directus.

One service (with its worker) and one Strava simulator serve the whole
module, against the session's SQLite Directus; every test opens its own
browser context, so cookies never leak from one test to the next. Screenshots
of the status and activity pages, light and dark, land in
artifacts/screenshots/.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from directus_strava import settings as settings_module
from directus_strava.access import SESSION_COOKIE
from directus_strava.directus import DirectusClient
from directus_strava.schema import setup as setup_schema
from directus_strava.service import Service
from directus_strava.web import create_app
from local_directus import Instance
from served import free_port
from strava_simulator import RunningSimulator, SimulatorConfig
from strava_simulator import running as simulator_running

pytestmark = [pytest.mark.browser, pytest.mark.directus]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
COLLECTION = "web_test_activities"


@dataclass
class Site:
    """The running service and what the tests need to reach around it."""

    url: str
    service: Service
    directus: Instance
    strava: RunningSimulator


def _wait_until(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module")
def site(
    directus_sqlite: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    setup_schema(admin, COLLECTION)
    admin.close()
    config = SimulatorConfig(seed=11, activities=6)
    with simulator_running(config) as strava:
        port = free_port()
        settings = settings_module.load(
            strava_client_id=strava.client_id,
            strava_client_secret=strava.client_secret,
            strava_web_url=strava.base_url,
            strava_api_url=strava.api_url,
            directus_url=directus_sqlite.url,
            directus_token=directus_sqlite.admin_token,
            directus_collection=COLLECTION,
            service_public_url=f"http://127.0.0.1:{port}",
            service_secret_key="test-secret-key-" + "x" * 32,
            service_data_dir=tmp_path_factory.mktemp("service"),
            service_demo=True,
        )
        service = Service.build(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        _wait_until(lambda: server.started, 20)
        yield Site(f"http://127.0.0.1:{port}", service, directus_sqlite, strava)
        server.should_exit = True
        thread.join(20)
        service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (./dev test)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1100, "height": 900})
    opened.set_default_timeout(20_000)
    yield opened
    opened.close()


def _log_in(page: Page, site: Site, password: str | None = None) -> None:
    page.goto(site.url + "/login")
    page.get_by_label("Email").fill(site.directus.admin_email)
    page.get_by_label("Password").fill(password or site.directus.admin_password)
    page.get_by_role("button", name="Log in").click()


def _connect(page: Page, site: Site, private: bool = True) -> None:
    page.goto(site.url + "/")
    page.get_by_role("button", name="Connect with Strava").click()
    page.wait_for_url(site.strava.base_url + "/oauth/authorize*")
    if not private:
        page.get_by_label("View data about your private activities").uncheck()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(site.url + "/oauth/callback*")


def test_a_stranger_is_refused(site: Site, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(site.url + "/activities")
    assert page.url.startswith(site.url + "/login")
    assert page.get_by_role("heading", name="Log in").is_visible()
    assert page.get_by_text("Recent activities").count() == 0
    post = httpx.post(site.url + "/connect", data={"csrf": "x"})
    assert post.status_code == 403
    health = httpx.get(site.url + "/health")
    assert health.status_code == 200
    assert health.json()["directus"] is True


def test_login_through_directus(site: Site, context: BrowserContext) -> None:
    page = context.new_page()
    _log_in(page, site, password="not-the-password")
    assert page.get_by_role("alert").inner_text().startswith("Directus did not")
    _log_in(page, site)
    page.wait_for_url(site.url + "/")
    assert page.get_by_role("heading", name="Connected athletes").is_visible()
    assert page.get_by_text("Demo mode").is_visible()
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    assert site.directus.admin_password not in cookie["value"]


def test_login_with_the_directus_session_cookie(
    site: Site, context: BrowserContext
) -> None:
    # Directus and the service share the host 127.0.0.1; cookies ignore ports.
    answer = context.request.post(
        site.directus.url + "/auth/login",
        data={
            "email": site.directus.admin_email,
            "password": site.directus.admin_password,
            "mode": "session",
        },
    )
    assert answer.ok
    page = context.new_page()
    page.goto(site.url + "/")
    assert page.url == site.url + "/"
    assert page.get_by_role("heading", name="Connected athletes").is_visible()


def test_connect_without_private_scope_explains(
    site: Site, context: BrowserContext
) -> None:
    page = context.new_page()
    _log_in(page, site)
    _connect(page, site, private=False)
    assert "did not allow private activities" in page.get_by_role("status").inner_text()
    athletes = site.service.tokens.connected()
    assert athletes
    assert "activity:read_all" not in athletes[0]["scopes"]


def test_connect_then_import_from_the_list(site: Site, context: BrowserContext) -> None:
    page = context.new_page()
    _log_in(page, site)
    _connect(page, site, private=True)
    assert "private ones included" in page.get_by_role("status").inner_text()
    page.get_by_role("link", name="See the activities").click()
    page.get_by_role("button", name="Refresh page 1 from Strava").click()
    rows = page.locator("tr[data-activity]")
    rows.nth(2).wait_for()  # the table polls while the list job runs
    first = rows.first
    activity_id = int(first.get_attribute("data-activity") or 0)
    first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Import selected").click()
    assert "Queued 1 import" in page.get_by_role("status").first.inner_text()
    row = page.locator(f'tr[data-activity="{activity_id}"]')
    row.get_by_text("in Directus").wait_for(timeout=60_000)
    assert row.get_by_role("link", name="Directus").is_visible()

    item = _directus_item(site, activity_id)
    assert item["id"] == activity_id
    assert item["gpx"], "the GPX file is linked to the item"
    _screenshots(page, site)


def _directus_item(site: Site, activity_id: int) -> dict[str, Any]:
    admin = DirectusClient(site.directus.url, site.directus.admin_token)
    try:
        items = admin.items(COLLECTION, **{"filter[id][_eq]": activity_id})
    finally:
        admin.close()
    assert len(items) == 1
    return items[0]


def _screenshots(page: Page, site: Site) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for name, path in (("status", "/"), ("activities", "/activities")):
            page.goto(site.url + path)
            target = SHOTS / f"{name}-{scheme}.png"
            page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 10_000


def test_a_forged_cross_site_post_is_rejected(
    site: Site, context: BrowserContext
) -> None:
    page = context.new_page()
    _log_in(page, site)
    before = site.service.queue.counts()["waiting"]
    evil = _evil_page(site.url + "/activities/refresh")
    try:
        page.goto(evil.url)
        page.wait_for_url(site.url + "/activities/refresh")
        assert page.get_by_role("alert").inner_text().startswith("This form did not")
    finally:
        evil.close()
    assert site.service.queue.counts()["waiting"] == before
    # The session cookie alone, a foreign Origin, no CSRF token: refused too.
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    forged = httpx.post(
        site.url + "/activities/refresh",
        cookies=cookies,
        headers={"Origin": "http://127.0.0.1:9"},
        data={"page": "1"},
    )
    assert forged.status_code == 403


@dataclass
class Evil:
    """A page on another origin that auto-submits a form to the service."""

    url: str
    server: http.server.HTTPServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _evil_page(target: str) -> Evil:
    body = (
        f'<!doctype html><form method="post" action="{target}">'
        '<input name="page" value="1"></form>'
        "<script>document.forms[0].submit()</script>"
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Evil(f"http://127.0.0.1:{server.server_address[1]}/", server)


def test_logout(site: Site, context: BrowserContext) -> None:
    page = context.new_page()
    _log_in(page, site)
    page.wait_for_url(site.url + "/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(site.url + "/login")
    page.goto(site.url + "/")
    assert page.url.startswith(site.url + "/login")
