"""The simulator's OAuth endpoints, driven over HTTP like a browser and a client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from simulator_support import ConsentForm
from strava_simulator import RunningSimulator, SimulatorConfig, running

REDIRECT = "http://127.0.0.1:9/callback"
RECORDED = Path(__file__).parent / "fixtures" / "strava" / "recorded"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        athletes=2, activities=5, sim_clock=True, clock_start=1_760_000_000,
        callback_domains=("example.org",),
    )  # fmt: skip
    with running(config) as started:
        yield started


@pytest.fixture
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    sim.control.reset()
    with httpx.Client(base_url=sim.base_url, follow_redirects=False) as client:
        yield client


def authorize_params(sim: RunningSimulator, **extra: str) -> dict[str, Any]:
    params = {
        "client_id": str(sim.client_id),
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "read,activity:read_all,activity:read",
        "state": "xyz-42",
        "approval_prompt": "force",
    }
    return params | extra


def consent(http: httpx.Client, sim: RunningSimulator, **extra: str) -> ConsentForm:
    page = http.get("/oauth/authorize", params=authorize_params(sim, **extra))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return ConsentForm(page.text)


def decide(
    http: httpx.Client, form: ConsentForm, decision: str, **kw: Any
) -> dict[str, str]:
    answer = http.post(
        form.action,
        content=urlencode(form.submit(decision, **kw)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(http: httpx.Client, sim: RunningSimulator, code: str) -> httpx.Response:
    return http.post(
        "/oauth/token",
        data={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "code": code,
            "grant_type": "authorization_code",
        },
    )


def refresh(http: httpx.Client, sim: RunningSimulator, token: str) -> httpx.Response:
    return http.post(
        "/oauth/token",
        json={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "refresh_token": token,
            "grant_type": "refresh_token",
        },
    )


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())["body"]


def test_consent_page_lists_scopes_athletes_and_buttons(http, sim) -> None:
    form = consent(http, sim)
    assert form.action == "/oauth/accept_application"
    assert set(form.boxes) == {"read", "activity:read_all", "activity:read"}
    assert all("checked" in box for box in form.boxes.values())
    assert "disabled" in form.boxes["read"]
    assert {"scope-read", "scope-activity-read", "athlete"} <= set(form.labels)
    assert "private activities" in form.labels["scope-activity-read_all"]
    assert form.options == [str(a["id"]) for a in sim.control.state()["athletes"]]
    assert form.buttons == ["authorize", "cancel"]


def test_authorize_grants_all_ticked_scopes_with_state(http, sim) -> None:
    answer = decide(http, consent(http, sim), "authorize")
    assert answer["state"] == "xyz-42"
    assert answer["scope"] == "read,activity:read_all,activity:read"
    assert len(answer["code"]) >= 20


def test_unticked_scope_is_not_granted(http, sim) -> None:
    answer = decide(
        http, consent(http, sim), "authorize", untick=("activity:read_all",)
    )
    assert answer["scope"] == "read,activity:read"
    tokens = exchange(http, sim, answer["code"]).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    listing = http.get(sim.api_url + "/athlete/activities", headers=headers)
    assert listing.status_code == 200
    assert all(not item["private"] for item in listing.json())


def test_read_cannot_be_refused(http, sim) -> None:
    untick = ("read", "activity:read", "activity:read_all")
    answer = decide(http, consent(http, sim), "authorize", untick=untick)
    assert answer["scope"] == "read"


def test_cancel_redirects_with_access_denied(http, sim) -> None:
    answer = decide(http, consent(http, sim), "cancel")
    assert answer == {"state": "xyz-42", "error": "access_denied"}


def test_chosen_athlete_is_the_one_logged_in(http, sim) -> None:
    form = consent(http, sim)
    second = form.options[1]
    code = decide(http, form, "authorize", athlete=second)["code"]
    tokens = exchange(http, sim, code).json()
    assert str(tokens["athlete"]["id"]) == second


def test_unknown_client_is_refused(http, sim) -> None:
    answer = http.get("/oauth/authorize", params=authorize_params(sim, client_id="999"))
    assert answer.status_code == 400
    assert answer.json() == recorded("oauth_token_invalid_client.json")


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("https://evil.example.com/cb", 400),
        ("http://localhost:8000/cb", 200),
        ("https://app.example.org/cb", 200),
        ("https://example.org/cb", 200),
    ],
)
def test_redirect_host_must_be_allowed(http, sim, uri, status) -> None:
    answer = http.get(
        "/oauth/authorize", params=authorize_params(sim, redirect_uri=uri)
    )
    assert answer.status_code == status
    if status == 400:
        assert answer.json()["errors"][0]["field"] == "redirect_uri"


def test_first_exchange_matches_recorded_shape(http, sim) -> None:
    code = decide(http, consent(http, sim), "authorize")["code"]
    answer = exchange(http, sim, code)
    body = answer.json()
    expected = recorded("oauth_token_authorization_code.json")
    assert answer.status_code == 200
    assert list(body) == list(expected)
    assert list(body["athlete"]) == list(expected["athlete"])
    assert body["expires_in"] == 21600
    assert body["expires_at"] == 1_760_000_000 + 21600
    assert "x-ratelimit-limit" not in answer.headers


def test_code_is_single_use(http, sim) -> None:
    code = decide(http, consent(http, sim), "authorize")["code"]
    assert exchange(http, sim, code).status_code == 200
    again = exchange(http, sim, code)
    assert again.status_code == 400
    assert again.json() == recorded("oauth_token_invalid_code.json")


def test_code_expires(http, sim) -> None:
    code = decide(http, consent(http, sim), "authorize")["code"]
    sim.control.advance_clock(601)
    assert exchange(http, sim, code).status_code == 400


def test_wrong_secret_is_refused(http, sim) -> None:
    code = decide(http, consent(http, sim), "authorize")["code"]
    answer = http.post(
        "/oauth/token",
        data={"client_id": sim.client_id, "client_secret": "x", "code": code,
              "grant_type": "authorization_code"},
    )  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "client_secret"


def test_refresh_keeps_access_token_while_more_than_an_hour_left(http, sim) -> None:
    first = sim.control.tokens()
    sim.control.advance_clock(3 * 3600)
    body = refresh(http, sim, first["refresh_token"]).json()
    assert list(body) == list(recorded("oauth_token_refresh_token.json"))
    assert body["access_token"] == first["access_token"]
    assert body["expires_in"] == 3 * 3600
    assert body["refresh_token"] != first["refresh_token"]


def test_refresh_gives_new_access_token_within_the_last_hour(http, sim) -> None:
    first = sim.control.tokens()
    sim.control.advance_clock(5 * 3600 + 1)
    body = refresh(http, sim, first["refresh_token"]).json()
    assert body["access_token"] != first["access_token"]
    assert body["expires_in"] == 21600


def test_old_refresh_token_dies_at_once(http, sim) -> None:
    first = sim.control.tokens()
    assert refresh(http, sim, first["refresh_token"]).status_code == 200
    reused = refresh(http, sim, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["errors"][0] == {
        "resource": "RefreshToken", "field": "refresh_token", "code": "invalid"
    }  # fmt: skip


def test_rotation_can_be_switched_off(http, sim) -> None:
    sim.control.settings(rotate_refresh_tokens=False)
    first = sim.control.tokens()
    body = refresh(http, sim, first["refresh_token"]).json()
    assert body["refresh_token"] == first["refresh_token"]
    assert refresh(http, sim, first["refresh_token"]).status_code == 200
    sim.control.settings(rotate_refresh_tokens=True)


def test_access_token_expires_after_six_hours(http, sim) -> None:
    tokens = sim.control.tokens()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(sim.api_url + "/athlete", headers=headers).status_code == 200
    sim.control.advance_clock(21600)
    assert http.get(sim.api_url + "/athlete", headers=headers).status_code == 401


def test_deauthorize_revokes_every_token(http, sim) -> None:
    tokens = sim.control.tokens()
    answer = http.post(
        "/oauth/deauthorize", data={"access_token": tokens["access_token"]}
    )
    assert answer.json() == {"access_token": tokens["access_token"]}
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(sim.api_url + "/athlete", headers=headers).status_code == 401
    assert refresh(http, sim, tokens["refresh_token"]).status_code == 400


def test_revoke_with_a_refresh_token_revokes_the_access_token(http, sim) -> None:
    tokens = sim.control.tokens()
    answer = http.post("/oauth/revoke", data={"token": tokens["refresh_token"]})
    assert answer.status_code == 200
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(sim.api_url + "/athlete", headers=headers).status_code == 401
    unknown = http.post("/oauth/revoke", data={"token": "never-issued"})
    assert unknown.status_code == 200
