"""Push subscriptions and event deliveries against a real callback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator_support import Callback, callback_server
from strava_simulator import RunningSimulator, SimulatorConfig, running

RECORDED = Path(__file__).parent / "fixtures" / "strava"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(athletes=2, activities=8, webhook_retry_delay=0.05)
    with running(config) as started:
        yield started


@pytest.fixture
def callback(sim: RunningSimulator) -> Iterator[Callback]:
    sim.control.reset()
    with callback_server() as server:
        yield server


def subscribe(sim: RunningSimulator, url: str, **extra: str) -> httpx.Response:
    form = {
        "client_id": str(sim.client_id),
        "client_secret": sim.client_secret,
        "callback_url": url,
        "verify_token": "STRAVA",
    }
    return httpx.post(
        sim.api_url + "/push_subscriptions", data=form | extra, timeout=10
    )


def credentials(sim: RunningSimulator) -> dict[str, Any]:
    return {"client_id": sim.client_id, "client_secret": sim.client_secret}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def test_handshake_then_create_list_delete(sim, callback) -> None:
    answer = subscribe(sim, callback.url)
    expected = recorded("recorded/push_subscription_create.json")["body"]
    assert answer.status_code == 201
    assert list(answer.json()) == list(expected)
    assert callback.checks[0]["hub.mode"] == "subscribe"
    assert callback.checks[0]["hub.verify_token"] == "STRAVA"
    assert answer.headers["x-ratelimit-usage"] == "0,0"
    listing = httpx.get(sim.api_url + "/push_subscriptions", params=credentials(sim))
    listed = recorded("recorded/push_subscriptions_list.json")["body"]
    assert [list(item) for item in listing.json()] == [list(item) for item in listed]
    assert listing.json()[0]["callback_url"] == callback.url
    url = f"{sim.api_url}/push_subscriptions/{answer.json()['id']}"
    assert httpx.delete(url, params=credentials(sim)).status_code == 204
    empty = httpx.get(sim.api_url + "/push_subscriptions", params=credentials(sim))
    assert empty.json() == recorded("recorded/push_subscriptions_empty.json")["body"]


def test_only_one_subscription_per_application(sim, callback) -> None:
    assert subscribe(sim, callback.url).status_code == 201
    second = subscribe(sim, callback.url)
    assert second.status_code == 400
    assert second.json()["errors"][0]["code"] == "already exists"


@pytest.mark.parametrize(
    ("mode", "code"),
    [("error", "GET to callback URL does not return 200"), ("wrong", "not verifiable")],
)
def test_unverifiable_callback_is_refused(sim, callback, mode, code) -> None:
    callback.challenge_mode = mode
    answer = subscribe(sim, callback.url)
    assert answer.status_code == 400
    assert answer.json()["errors"][0] == {
        "resource": "PushSubscription", "field": "callback url", "code": code
    }  # fmt: skip
    listing = httpx.get(sim.api_url + "/push_subscriptions", params=credentials(sim))
    assert listing.json() == []


def test_unreachable_callback_is_refused(sim, callback) -> None:
    answer = subscribe(sim, "http://127.0.0.1:9/webhook")
    assert answer.status_code == 400


def test_wrong_secret_is_refused(sim, callback) -> None:
    answer = subscribe(sim, callback.url, client_secret="wrong")
    assert answer.status_code == 401
    assert callback.checks == []


def test_events_for_create_update_delete_and_deauthorize(sim, callback) -> None:
    subscription = subscribe(sim, callback.url).json()
    athlete = sim.control.state()["athletes"][0]["id"]
    sim.control.tokens(athlete_id=athlete, scope="read,activity:read_all")
    created = sim.control.create_activity(athlete, sport_type="Ride", name="New ride")
    sim.control.update_activity(created["id"], name="Renamed")
    sim.control.update_activity(created["id"], sport_type="Run")
    sim.control.update_activity(created["id"], private=True)
    sim.control.update_activity(created["id"], description="no event for this")
    sim.control.delete_activity(created["id"])
    sim.control.deauthorize(athlete)
    sim.control.wait_for_deliveries(6)
    events = callback.events
    documented = recorded("webhooks/event_activity_update_docs.json")
    assert all(sorted(event) == sorted(documented) for event in events)
    assert [(e["aspect_type"], e["object_type"], e["updates"]) for e in events] == [
        ("create", "activity", {}),
        ("update", "activity", {"title": "Renamed"}),
        ("update", "activity", {"type": "Run"}),
        ("update", "activity", {"private": "true"}),
        ("delete", "activity", {}),
        ("update", "athlete", {"authorized": "false"}),
    ]
    assert {e["subscription_id"] for e in events} == {subscription["id"]}
    assert {e["owner_id"] for e in events} == {athlete}
    assert events[0]["object_id"] == created["id"]
    assert events[-1]["object_id"] == athlete
    assert sim.control.counters()["webhooks"]["delivered"] == 6


def test_read_only_grant_sees_privacy_changes_as_delete_and_create(
    sim, callback
) -> None:
    subscribe(sim, callback.url)
    athlete = sim.control.state()["athletes"][0]["id"]
    sim.control.tokens(athlete_id=athlete, scope="read,activity:read")
    created = sim.control.create_activity(athlete, name="Public run", sport_type="Run")
    sim.control.update_activity(created["id"], private=True)
    sim.control.update_activity(created["id"], name="hidden rename")
    sim.control.update_activity(created["id"], private=False)
    sim.control.wait_for_deliveries(3)
    assert [e["aspect_type"] for e in callback.events] == ["create", "delete", "create"]


def test_no_events_for_athletes_who_never_authorized(sim, callback) -> None:
    subscribe(sim, callback.url)
    athlete = sim.control.state()["athletes"][1]["id"]
    sim.control.create_activity(athlete, name="Unseen")
    sim.control.deauthorize(athlete)
    assert sim.control.deliveries() == []


def test_failing_callback_gets_three_attempts(sim, callback) -> None:
    subscribe(sim, callback.url)
    athlete = sim.control.state()["athletes"][0]["id"]
    sim.control.tokens(athlete_id=athlete)
    callback.fail_first = 2
    created = sim.control.create_activity(athlete)
    sim.control.wait_for_deliveries(1)
    callback.fail_first = callback.posts + 3
    sim.control.delete_activity(created["id"])
    first, second = sim.control.wait_for_deliveries(2)
    assert [a["status"] for a in first["attempts"]] == [503, 503, 200]
    assert first["delivered"] is True
    assert [a["status"] for a in second["attempts"]] == [503, 503, 503]
    assert second["delivered"] is False
    assert all(a["latency_ms"] >= 0 for a in first["attempts"])
    counts = sim.control.counters()["webhooks"]
    assert counts == {
        "events": 2,
        "attempts": 6,
        "delivered": 1,
        "failed": 1,
        "pending": 0,
    }


def test_slow_callback_times_out_and_is_retried(sim, callback) -> None:
    subscribe(sim, callback.url)
    sim.control.settings(webhook_timeout=0.2)
    sim.control.tokens()
    callback.delay = 0.5
    sim.control.create_activity()
    (delivery,) = sim.control.wait_for_deliveries(1)
    assert [a["error"] for a in delivery["attempts"]] == ["ReadTimeout"] * 3
    assert all(a["latency_ms"] >= 200 for a in delivery["attempts"])
    sim.control.settings(webhook_timeout=2.0)


def test_deauthorize_endpoint_sends_the_event(sim, callback) -> None:
    subscribe(sim, callback.url)
    tokens = sim.control.tokens()
    httpx.post(
        sim.oauth_url + "/deauthorize", data={"access_token": tokens["access_token"]}
    )
    sim.control.wait_for_deliveries(1)
    assert callback.events[0]["updates"] == {"authorized": "false"}
    assert callback.events[0]["object_id"] == tokens["athlete_id"]
