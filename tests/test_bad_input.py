"""Bad input, one table per door: each case with the clear refusal it gets.

Webhook events go over real HTTP to the callback routes (uvicorn on
loopback, no worker, so what an event queued stays visible); OAuth callbacks
go through `Tokens.finish` against the simulator and through the web page;
odd Strava data goes straight into `Importer.write_detail` against the
session's real SQLite Directus, because the simulator never produces most of
these oddities.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from directus_strava import webhooks
from directus_strava.directus import DirectusClient
from directus_strava.errors import AuthorizationError, OAuthError
from directus_strava.importer import ImportConfig, Importer
from directus_strava.oauth import STATE_TTL
from directus_strava.schema import setup as setup_schema
from directus_strava.service import Service
from directus_strava.store import Store
from directus_strava.webhooks import SUBSCRIPTION_KEY, verify_token
from local_directus import Instance
from served import serve
from strava_flow import connect, consent, settings_for
from strava_simulator import RunningSimulator, SimulatorConfig, running

SUBSCRIPTION = 4242


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running(SimulatorConfig(seed=3, activities=2)) as simulator:
        yield simulator


class StepClock:
    """A clock tests move by hand (the simulator keeps real time)."""

    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.t += seconds
        return stop.is_set()


@dataclass
class Callback:
    """A connected service serving its webhook callback, worker stopped."""

    service: Service
    url: str
    athlete: int
    clock: StepClock


@pytest.fixture(scope="module")
def callback(
    sim: RunningSimulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callback]:
    # Directus is never reached here: events are only checked and queued.
    clock = StepClock()
    data = tmp_path_factory.mktemp("webhook-table")
    settings = settings_for(sim, "http://127.0.0.1:9", "unused-directus-token", data)
    service = Service.build(settings, clock=clock)
    athlete = connect(service).athlete_id
    service.store.put(SUBSCRIPTION_KEY, str(SUBSCRIPTION))
    app = Starlette(routes=webhooks.routes(service))
    with serve(app) as base:
        url = f"{base}/webhook/{webhooks.path_secret(settings)}"
        yield Callback(service, url, athlete, clock)
    service.close()


@pytest.fixture
def hook(callback: Callback) -> Callback:
    """The callback with an empty queue."""
    callback.service.store.db.execute("DELETE FROM jobs")
    return callback


def event(hook: Callback, **changes: Any) -> dict[str, Any]:
    """A valid activity event for the connected athlete, with changes."""
    body: dict[str, Any] = {
        "object_type": "activity",
        "object_id": 1001,
        "aspect_type": "create",
        "owner_id": hook.athlete,
        "subscription_id": SUBSCRIPTION,
        "event_time": 1_700_000_000,
        "updates": {},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


# --- Webhook events -----------------------------------------------------------

OVERSIZED = {"updates": {"title": "x" * 5000}}
EVENTS: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b"{not json", 400, "malformed event: body: Invalid JSON"),
    ("empty body", b"", 400, "malformed event"),
    ("a JSON list", b"[1, 2]", 400, "malformed event"),
    ("id as text", {"object_id": "12"}, 400, "object_id: Input should be"),
    ("owner as float", {"owner_id": 1.5}, 400, "owner_id: Input should be"),
    ("null subscription", {"subscription_id": None}, 400, "subscription_id"),
    ("updates not a dict", {"updates": "x"}, 400, "updates: Input should be"),
    ("owner missing", {"owner_id": ...}, 400, "owner_id: Field required"),
    ("negative id", {"object_id": -5}, 400, "object_id: Input should be greater"),
    ("unknown aspect", {"aspect_type": "rename"}, 400, "aspect_type"),
    ("unknown object type", {"object_type": "club"}, 400, "object_type"),
    ("unknown subscription", {"subscription_id": 7}, 403, "unknown subscription 7"),
    ("unknown owner", {"owner_id": 999_999}, 403, "unknown athlete 999999"),
    ("oversized body", OVERSIZED, 413, "event body over 4096 bytes"),
]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [case[1:] for case in EVENTS],
    ids=[case[0] for case in EVENTS],
)
def test_a_bad_event_is_refused_with_a_reason_and_queues_nothing(
    hook: Callback, body: Any, status: int, error: str
) -> None:
    if isinstance(body, bytes):
        answer = httpx.post(hook.url, content=body)
    else:
        answer = httpx.post(hook.url, json=event(hook, **body))
    assert answer.status_code == status, answer.text
    assert error in answer.json()["error"]
    assert hook.service.queue.counts()["waiting"] == 0


def test_an_oversized_body_without_a_length_is_cut_off(hook: Callback) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1000  # JSON whitespace: only the size is wrong

    answer = httpx.post(hook.url, content=chunks())
    assert answer.status_code == 413
    assert answer.json() == {"error": "event body over 4096 bytes"}


def test_a_wrong_callback_path_is_not_found(hook: Callback) -> None:
    wrong = hook.url.rsplit("/", 1)[0] + "/" + "0" * 40
    assert httpx.post(wrong, json=event(hook)).status_code == 404
    assert hook.service.queue.counts()["waiting"] == 0


VALIDATIONS: list[tuple[str, dict[str, str], int]] = [
    ("the right token", {}, 200),
    ("a wrong verify token", {"hub.verify_token": "guess"}, 403),
    ("no verify token", {"hub.verify_token": ""}, 403),
    ("a wrong mode", {"hub.mode": "unsubscribe"}, 403),
    ("no challenge", {"hub.challenge": ""}, 403),
    ("an oversized challenge", {"hub.challenge": "c" * 300}, 403),
]


@pytest.mark.parametrize(
    ("changes", "status"),
    [case[1:] for case in VALIDATIONS],
    ids=[case[0] for case in VALIDATIONS],
)
def test_subscription_validation_needs_the_verify_token(
    hook: Callback, changes: dict[str, str], status: int
) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "challenge-15",
        "hub.verify_token": verify_token(hook.service.settings),
        **changes,
    }
    answer = httpx.get(hook.url, params=query)
    assert answer.status_code == status
    if status == 200:
        assert answer.json() == {"hub.challenge": "challenge-15"}
    else:
        assert answer.json() == {"error": "verify token or challenge wrong"}


def test_a_replayed_event_queues_one_import(hook: Callback) -> None:
    body = event(hook, object_id=2002)
    answers = [httpx.post(hook.url, json=body) for _ in range(5)]
    assert [a.json() for a in answers] == [{"queued": "import"}] * 5
    assert hook.service.queue.counts()["waiting"] == 1


def test_events_of_an_athlete_who_left_are_refused_but_deauthorization_is_not(
    hook: Callback, sim: RunningSimulator
) -> None:
    service = hook.service
    service.tokens.forget(hook.athlete)
    try:
        update = httpx.post(hook.url, json=event(hook, aspect_type="update"))
        assert update.status_code == 403
        assert "no longer connected" in update.json()["error"]
        leave = event(
            hook,
            object_type="athlete",
            object_id=hook.athlete,
            aspect_type="update",
            updates={"authorized": "false"},
        )
        assert httpx.post(hook.url, json=leave).json() == {"queued": "deauthorize"}
    finally:
        connect(service)
    other = event(hook, object_type="athlete", object_id=hook.athlete)
    assert httpx.post(hook.url, json=other).json() == {"queued": "ignored"}


# --- OAuth callback -----------------------------------------------------------

REDIRECT = "http://127.0.0.1:9/callback"


def _fresh(service: Service) -> dict[str, str]:
    """The callback parameters of a connection the athlete just authorized."""
    return consent(service.tokens.begin(REDIRECT))


def _missing_state(service: Service) -> dict[str, str]:
    params = _fresh(service)
    del params["state"]
    return params


def _forged_state(service: Service) -> dict[str, str]:
    return {**_fresh(service), "state": "forged-by-someone-else"}


def _reused_state(service: Service) -> dict[str, str]:
    params = _fresh(service)
    service.tokens.finish(params)
    return params


def _reused_code(service: Service) -> dict[str, str]:
    used = _fresh(service)
    service.tokens.finish(used)
    state = _fresh(service)["state"]  # a new, valid attempt carrying the old code
    return {**used, "state": state}


def _denied(service: Service) -> dict[str, str]:
    return consent(service.tokens.begin(REDIRECT), decision="deny")


def _no_activity_scope(service: Service) -> dict[str, str]:
    url = service.tokens.begin(REDIRECT)
    return consent(url, untick=("activity:read_all", "activity:read"))


def _expired(service: Service) -> dict[str, str]:
    params = _fresh(service)
    service.clock.sleep(STATE_TTL + 1, threading.Event())
    return params


CALLBACKS: list[tuple[str, Any, type[Exception], str]] = [
    ("missing state", _missing_state, OAuthError, "state mismatch"),
    ("forged state", _forged_state, OAuthError, "state mismatch"),
    ("reused state", _reused_state, OAuthError, "already used"),
    ("reused code", _reused_code, AuthorizationError, "refused to exchange"),
    ("access denied", _denied, OAuthError, "You declined the connection"),
    ("no activity scope", _no_activity_scope, OAuthError, "did not grant access"),
    ("expired attempt", _expired, OAuthError, "expired: start again"),
]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [case[1:] for case in CALLBACKS],
    ids=[case[0] for case in CALLBACKS],
)
def test_a_bad_oauth_callback_is_refused_with_a_reason(
    callback: Callback, make: Any, error: type[Exception], message: str
) -> None:
    params = make(callback.service)
    with pytest.raises(error, match=message):
        callback.service.tokens.finish(params)


def test_declining_private_activities_connects_with_advice(callback: Callback) -> None:
    url = callback.service.tokens.begin(REDIRECT)
    connection, _ = callback.service.tokens.finish(
        consent(url, untick=("activity:read_all",))
    )
    assert connection.private_declined
    assert "visible only to you will not be imported" in connection.advice()
    callback.service.tokens.finish(_fresh(callback.service))  # back to all scopes


# --- Strava data ----------------------------------------------------------------

XML_SPECIALS = "<b>&amp; \"quotes\" 'apostrophes' ]]> <![CDATA[x]]>"
CONTROLS = "bell\x07 null\x00 escape\x1b tab\t newline\n end"
EMOJI = "Morning ride 🚴‍♀️🔥 with ümlauts, 中文 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
TRACK = {
    "latlng": [[47.0 + i / 1e4, 8.0 + i / 1e4] for i in range(20)],
    "time": list(range(0, 200, 10)),
    "altitude": [400.0 + i for i in range(20)],
}


def activity(activity_id: int, **changes: Any) -> dict[str, Any]:
    """A plausible detailed activity, with changes."""
    body: dict[str, Any] = {
        "id": activity_id,
        "name": "Lunch run",
        "sport_type": "Run",
        "type": "Run",
        "start_date": "2024-05-01T08:00:00Z",
        "start_date_local": "2024-05-01T10:00:00",
        "timezone": "(GMT+01:00) Europe/Zurich",
        "distance": 2000.0,
        "moving_time": 600,
        "elapsed_time": 650,
        "athlete": {"id": 77},
        "start_latlng": [47.0, 8.0],
        "end_latlng": [47.002, 8.002],
        "map": {"summary_polyline": ""},
        "description": "Easy",
        "private_note": "Legs ok",
    }
    body.update(changes)
    return body


@dataclass
class DataCase:
    """An odd activity and what Directus must end up holding."""

    name: str
    changes: dict[str, Any]
    streams: dict[str, list[Any]]
    expect: dict[str, Any]
    gpx: bool


NO_GPS = {"start_latlng": [], "end_latlng": [], "map": {}}
DATA = [
    DataCase("no GPS", NO_GPS, {}, {"route": None, "places_status": "no_gps"}, False),
    DataCase("empty streams", {}, {}, {"route": None}, False),
    DataCase("time only", {}, {"time": [0, 1, 2]}, {"route": None}, False),
    DataCase(
        "latlng only",
        {},
        {"latlng": TRACK["latlng"]},
        {"detail_level": "detail"},
        True,
    ),
    DataCase(
        "mismatched lengths",
        {},
        {**TRACK, "time": TRACK["time"][:5], "heartrate": [120] * 40},
        {"detail_level": "detail"},
        True,
    ),
    DataCase(
        "points with holes",
        {},
        {"latlng": [[47.0, 8.0], None, [], [91.0, 8.0], [47.1, 8.1], "x"]},
        {"detail_level": "detail"},
        True,
    ),
    DataCase(
        "emoji",
        {"name": EMOJI, "description": EMOJI},
        TRACK,
        {"name": EMOJI, "description": EMOJI},
        True,
    ),
    DataCase(
        "control characters",
        {"name": CONTROLS, "private_note": CONTROLS},
        TRACK,
        {"name": "bell null escape tab\t newline\n end"},
        True,
    ),
    DataCase(
        "XML specials",
        {"name": XML_SPECIALS, "description": XML_SPECIALS},
        TRACK,
        {"name": XML_SPECIALS, "description": XML_SPECIALS},
        True,
    ),
    DataCase(
        "absurd numbers",
        {
            "distance": 1e300,
            "moving_time": -5,
            "elapsed_time": 2**80,
            "max_speed": -1e308,
            "calories": "lots",
        },
        TRACK,
        {"distance": None, "moving_time": -5, "elapsed_time": None, "calories": None},
        True,
    ),
    DataCase(
        "NaN and infinity",
        {"distance": math.nan, "average_speed": math.inf, "moving_time": math.nan},
        {**TRACK, "altitude": [math.nan] * 20},
        {"distance": None, "average_speed": None, "moving_time": None},
        True,
    ),
    DataCase(
        "bad dates",
        {"start_date": "yesterday", "start_date_local": "2024-13-45T99:00:00"},
        TRACK,
        {"start_date": None, "start_date_local": None},
        True,
    ),
    DataCase(
        "very long name",
        {"name": "n" * 10_000, "description": "d" * 100_000},
        {},
        {"name": "n" * 255},
        False,
    ),
]


@pytest.fixture(scope="module")
def importer(
    directus_sqlite: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Importer]:
    admin = DirectusClient(directus_sqlite.url, directus_sqlite.admin_token)
    setup_schema(admin, "odd_activities")
    store = Store(tmp_path_factory.mktemp("odd-data") / "service.sqlite3")
    yield Importer(None, admin, store, ImportConfig(collection="odd_activities"))
    admin.close()


@pytest.mark.directus
@pytest.mark.parametrize("case", DATA, ids=[case.name for case in DATA])
def test_odd_strava_data_is_imported_or_clearly_refused(
    importer: Importer, case: DataCase
) -> None:
    activity_id = 9_000_000 + DATA.index(case)
    outcome = importer.write_detail(77, activity(activity_id, **case.changes),
                                    case.streams)  # fmt: skip
    assert outcome.wrote_item
    item = importer.directus.items_by_id("odd_activities", [activity_id])[0]
    for name, value in case.expect.items():
        assert item[name] == value, name
    assert bool(item["gpx"]) == case.gpx
    if case.gpx:
        document = importer.directus.download(item["gpx"])
        assert document.startswith(b"<?xml")
    again = importer.write_detail(77, activity(activity_id, **case.changes),
                                  case.streams)  # fmt: skip
    assert not again.wrote_item, "an unchanged import writes nothing"
