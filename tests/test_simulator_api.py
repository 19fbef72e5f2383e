"""The simulator's API v3 endpoints, rate limits and faults, over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polyline
import pytest

import secret_watch
from strava_simulator import RunningSimulator, SeedOptions, SimulatorConfig, running

FIXTURES = Path(__file__).parent / "fixtures" / "strava"
MIDNIGHT = 1_760_054_400  # 2025-10-10T00:00:00Z


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        athletes=2, activities=40, sim_clock=True, clock_start=MIDNIGHT - 600,
        seed_options=SeedOptions(recorded=True),
    )  # fmt: skip
    with running(config) as started:
        yield started


@pytest.fixture
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    sim.control.reset()
    with httpx.Client(base_url=sim.api_url, timeout=10) as client:
        yield client


def bearer(
    sim: RunningSimulator, scope: str = "read,activity:read_all", **kw: Any
) -> dict[str, str]:
    token = sim.control.tokens(scope=scope, **kw)["access_token"]
    return {"Authorization": f"Bearer {token}"}


def tagged(sim: RunningSimulator, tag: str) -> dict[str, Any]:
    first = sim.control.state()["athletes"][0]["id"]
    return next(a for a in sim.control.activities(first) if tag in a["tags"])


def streams_of(
    http: httpx.Client, sim: RunningSimulator, path: str, **params: str
) -> httpx.Response:
    return http.get(path, params=params, headers=bearer(sim))


def fixture(path: str) -> Any:
    body = json.loads((FIXTURES / path).read_text())
    return body["body"] if isinstance(body, dict) and "recorded_at" in body else body


# Authentication ----------------------------------------------------------------


def test_missing_token_is_401(http) -> None:
    answer = http.get("/athlete")
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "missing"


def test_invalid_token_looks_like_the_recording(http) -> None:
    answer = http.get("/athlete", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.json() == fixture("recorded/error_401_invalid_token.json")
    assert "x-ratelimit-usage" not in answer.headers


def test_token_in_query_is_refused(http, sim) -> None:
    token = bearer(sim)["Authorization"].split()[1]
    with secret_watch.unlogged():
        answer = http.get("/athlete", params={"access_token": token})
    assert answer.status_code == 401


def test_athlete_is_shaped_like_strava(http, sim) -> None:
    answer = http.get("/athlete", headers=bearer(sim))
    body = answer.json()
    recorded = json.loads(
        (FIXTURES.parent.parent / "fixtures" / "strava" / "1946417534.json").read_text()
    )
    assert body["id"] == sim.control.state()["athletes"][0]["id"]
    assert body["resource_state"] == 3
    assert {"bikes", "shoes", "measurement_preference", "ftp"} <= set(body)
    assert recorded["gear_id"]  # the recorded activity names gear, like ours
    assert answer.headers["x-ratelimit-limit"] == "200,2000"


# Listing -------------------------------------------------------------------------


def test_listing_is_newest_first_and_shaped_like_history(http, sim) -> None:
    items = http.get("/athlete/activities", headers=bearer(sim)).json()
    history = fixture("history/page_01.json")
    assert len(items) == 30
    starts = [item["start_date"] for item in items]
    assert starts == sorted(starts, reverse=True)
    ride = next(
        item for item in items if item["sport_type"] == "Run" and not item["manual"]
    )
    assert set(history[0]) <= set(ride)
    assert [k for k in ride if k in history[0]] == [k for k in history[0] if k in ride]
    assert ride["timezone"].startswith("(GMT")
    assert ride["start_date"].endswith("Z")
    assert ride["start_date_local"].endswith("Z")
    assert ride["id"] > 10**10


def test_paging_and_per_page_cap(http, sim) -> None:
    headers = bearer(sim)
    everything = http.get(
        "/athlete/activities", params={"per_page": 500}, headers=headers
    ).json()
    assert len(everything) == 41  # 40 generated plus the recorded one, under 200
    page2 = http.get(
        "/athlete/activities", params={"per_page": 10, "page": 2}, headers=headers
    )
    assert [a["id"] for a in page2.json()] == [a["id"] for a in everything[10:20]]
    past = http.get("/athlete/activities", params={"page": 99}, headers=headers)
    assert past.json() == []


def test_before_and_after_filter_by_start(http, sim) -> None:
    headers = bearer(sim)
    everything = http.get(
        "/athlete/activities", params={"per_page": 200}, headers=headers
    ).json()
    stamps = [
        int(
            time.mktime(time.strptime(a["start_date"], "%Y-%m-%dT%H:%M:%SZ"))
            - time.timezone
        )
        for a in everything
    ]
    params = {"before": stamps[5], "after": stamps[15], "per_page": 200}
    window = http.get("/athlete/activities", params=params, headers=headers).json()
    assert [a["id"] for a in window] == [a["id"] for a in everything[6:15]]


def test_only_me_hidden_without_read_all(http, sim) -> None:
    private = tagged(sim, "only_me")
    full = http.get(
        "/athlete/activities", params={"per_page": 200}, headers=bearer(sim)
    ).json()
    public = http.get(
        "/athlete/activities", params={"per_page": 200},
        headers=bearer(sim, "read,activity:read"),
    ).json()  # fmt: skip
    assert private["id"] in {a["id"] for a in full}
    assert private["id"] not in {a["id"] for a in public}
    assert len(public) == len(full) - 1
    only_me = next(a for a in full if a["id"] == private["id"])
    assert only_me["visibility"] == "only_me"
    assert only_me["private"] is True
    detail = http.get(
        f"/activities/{private['id']}", headers=bearer(sim, "read,activity:read")
    )
    assert detail.status_code == 404


def test_listing_needs_activity_read(http, sim) -> None:
    answer = http.get("/athlete/activities", headers=bearer(sim, "read"))
    assert answer.status_code == 401
    fault = answer.json()["errors"][0]
    assert fault["resource"] == "AccessToken"
    assert fault["field"] == "activity:read_permission"
    assert fault["code"] == "missing"


# Detail, streams, laps --------------------------------------------------------------


def test_detail_has_detailed_fields_and_private_note_for_owner(http, sim) -> None:
    weird = tagged(sim, "weird_name")
    body = http.get(f"/activities/{weird['id']}", headers=bearer(sim)).json()
    recorded = json.loads((FIXTURES / "1946417534.json").read_text())
    for key in (
        "description",
        "calories",
        "laps",
        "gear",
        "photos",
        "device_name",
        "map",
    ):
        assert key in body
        assert key in recorded
    assert body["name"] == weird["name"]
    assert "\u0007" in body["name"]
    assert "<" in body["name"]
    assert body["private_note"].startswith("Note with")
    assert body["map"]["polyline"]
    assert body["map"]["summary_polyline"]
    read_only = http.get(
        f"/activities/{weird['id']}", headers=bearer(sim, "read,activity:read")
    )
    assert "private_note" not in read_only.json()


def test_other_athletes_private_activity_is_404(http, sim) -> None:
    athletes = sim.control.state()["athletes"]
    theirs = sim.control.activities(athletes[1]["id"])
    private = next(a for a in theirs if "only_me" in a["tags"])
    public = next(a for a in theirs if not a["tags"])
    mine = bearer(sim, athlete_id=athletes[0]["id"])
    assert http.get(f"/activities/{private['id']}", headers=mine).status_code == 404
    other = http.get(f"/activities/{public['id']}", headers=mine).json()
    assert "private_note" not in other
    assert (
        http.get("/activities/1", headers=mine).json()["message"] == "Record Not Found"
    )


def test_streams_only_what_the_activity_has(http, sim) -> None:
    run = next(
        a
        for a in sim.control.activities()
        if a["sport_type"] == "Run" and not a["tags"]
    )
    keys = "time,latlng,altitude,heartrate,cadence,watts,temp,moving"
    keys += ",velocity_smooth,grade_smooth"
    streams = streams_of(
        http, sim, f"/activities/{run['id']}/streams", keys=keys, key_by_type="true"
    ).json()
    assert "watts" not in streams  # runs carry no power meter
    assert set(streams) == set(keys.split(",")) - {"watts"} | {"distance"}
    for stream in streams.values():
        assert stream["series_type"] == "distance"
        assert stream["original_size"] == run["points"] == len(stream["data"])
        assert stream["resolution"] == "high"
    detail = http.get(f"/activities/{run['id']}", headers=bearer(sim)).json()
    assert streams["distance"]["data"][-1] == pytest.approx(detail["distance"], abs=0.2)
    assert streams["time"]["data"][-1] == detail["elapsed_time"]
    assert (
        sum(not m for m in streams["moving"]["data"])
        == detail["elapsed_time"] - detail["moving_time"]
    )
    assert streams["latlng"]["data"][0] == detail["start_latlng"]
    track = polyline.decode(detail["map"]["summary_polyline"], 5)
    assert track[0] == pytest.approx(tuple(detail["start_latlng"]), abs=1e-5)
    assert track[-1] == pytest.approx(tuple(streams["latlng"]["data"][-1]), abs=1e-5)


def test_streams_without_key_by_type_are_a_list(http, sim) -> None:
    ride = next(
        a
        for a in sim.control.activities()
        if a["sport_type"] == "Ride" and not a["tags"]
    )
    answer = streams_of(
        http,
        sim,
        f"/activities/{ride['id']}/streams",
        keys="watts,latlng",
        resolution="low",
    ).json()
    assert [s["type"] for s in answer] == ["latlng", "distance", "watts"]
    assert all(len(s["data"]) == 100 and s["resolution"] == "low" for s in answer)


def test_manual_activity_has_no_gps_and_no_streams(http, sim) -> None:
    manual = tagged(sim, "manual")
    body = http.get(f"/activities/{manual['id']}", headers=bearer(sim)).json()
    assert body["manual"] is True
    assert body["map"]["summary_polyline"] == ""
    assert body["start_latlng"] == []
    assert body["has_heartrate"] is False
    assert body["upload_id"] is None
    streams = streams_of(
        http,
        sim,
        f"/activities/{manual['id']}/streams",
        keys="latlng,time",
        key_by_type="true",
    )
    assert streams.status_code == 200
    assert streams.json() == {}


def test_day_long_activity_has_86400_points(http, sim) -> None:
    long = tagged(sim, "day_long")
    streams = streams_of(
        http,
        sim,
        f"/activities/{long['id']}/streams",
        keys="time,watts",
        key_by_type="true",
    ).json()
    assert len(streams["time"]["data"]) == 86_400
    assert streams["time"]["data"][-1] == 86_399
    assert len(streams["watts"]["data"]) == 86_400


def test_recorded_activity_serves_its_recording(http, sim) -> None:
    recorded = json.loads((FIXTURES / "1946417534.json").read_text())
    body = http.get("/activities/1946417534", headers=bearer(sim)).json()
    assert body["map"]["polyline"] == recorded["map"]["polyline"]
    assert body["athlete"]["id"] == sim.control.state()["athletes"][0]["id"]
    streams = streams_of(
        http, sim, "/activities/1946417534/streams", keys="latlng", key_by_type="true"
    ).json()
    assert list(streams) == ["distance"]
    assert streams["distance"]["original_size"] == 13_129


def test_laps_cover_the_streams(http, sim) -> None:
    run = next(
        a
        for a in sim.control.activities()
        if a["sport_type"] == "Run" and not a["tags"]
    )
    laps = http.get(f"/activities/{run['id']}/laps", headers=bearer(sim)).json()
    assert laps[0]["start_index"] == 0
    assert laps[-1]["end_index"] == run["points"] - 1
    assert all(lap["distance"] == pytest.approx(1000, abs=1) for lap in laps[:-1])
    assert http.get(f"/activities/{run['id']}/photos", headers=bearer(sim)).json() == []


def test_photos_are_shaped_like_the_recording(http, sim) -> None:
    pictured = next(a for a in sim.control.activities() if "photos" in a["tags"])
    path = f"/activities/{pictured['id']}/photos"
    photos = http.get(path, params={"size": 5000}, headers=bearer(sim)).json()
    recorded = fixture("16181809559.photos.json")
    assert len(photos) == 2
    assert [set(photo) for photo in photos] == [set(recorded[0])] * 2
    assert all(list(photo["urls"]) == ["5000"] for photo in photos)
    detail = http.get(f"/activities/{pictured['id']}", headers=bearer(sim)).json()
    assert detail["total_photo_count"] == 2
    assert detail["photos"]["count"] == 2


# Rate limits -------------------------------------------------------------------------


def test_rate_limit_429_then_new_quarter_and_new_day(http, sim) -> None:
    sim.control.set_rate_limits(
        overall_15min=5, overall_daily=8, read_15min=3, read_daily=6
    )
    headers = bearer(sim)
    codes = [http.get("/athlete", headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = http.get("/athlete", headers=headers)
    assert refused.json() == {
        "message": "Rate Limit Exceeded",
        "errors": [
            {"resource": "Application", "field": "rate limit", "code": "exceeded"}
        ],
    }
    assert "retry-after" not in refused.headers
    assert refused.headers["x-ratelimit-usage"] == "5,5"
    assert refused.headers["x-readratelimit-usage"] == "5,5"
    assert refused.headers["x-readratelimit-limit"] == "3,6"
    sim.control.advance_clock(600)  # 23:50 -> 00:00: next quarter and next day
    fresh = http.get("/athlete", headers=headers)
    assert fresh.status_code == 200
    assert fresh.headers["x-ratelimit-usage"] == "1,1"


def test_refused_requests_count_toward_the_day(http, sim) -> None:
    sim.control.set_clock(MIDNIGHT + 60)
    sim.control.set_rate_limits(
        overall_15min=100, overall_daily=100, read_15min=2, read_daily=5
    )
    headers = bearer(sim)
    for _ in range(4):
        http.get("/athlete", headers=headers)
    sim.control.advance_clock(900)  # a new quarter, same day
    answers = [http.get("/athlete", headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].headers["x-readratelimit-usage"] == "2,6"


# Faults and counters ------------------------------------------------------------------


def test_latency_fault(http, sim) -> None:
    headers = bearer(sim)
    sim.control.add_fault("latency", count=1, latency_ms=300)
    started = time.perf_counter()
    assert http.get("/athlete", headers=headers).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    http.get("/athlete", headers=headers)
    assert time.perf_counter() - started < 0.3


def test_server_error_and_429_faults_for_the_next_requests(http, sim) -> None:
    headers = bearer(sim)
    sim.control.add_fault("error", count=2, status=503, path="*/athlete")
    sim.control.add_fault("rate_limit", count=1, path="*/athlete/activities")
    assert [http.get("/athlete", headers=headers).status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    limited = http.get("/athlete/activities", headers=headers)
    assert limited.status_code == 429
    assert limited.json()["message"] == "Rate Limit Exceeded"
    assert http.get("/athlete/activities", headers=headers).status_code == 200


def test_dropped_connection(http, sim) -> None:
    headers = bearer(sim)
    sim.control.add_fault("drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/athlete", headers=headers)
    assert http.get("/athlete", headers=headers).status_code == 200


def test_share_of_requests_fails_reproducibly(http, sim) -> None:
    headers = bearer(sim)
    sim.control.add_fault("error", probability=0.5, seed=7)
    first = [http.get("/athlete", headers=headers).status_code for _ in range(40)]
    sim.control.clear_faults()
    sim.control.add_fault("error", probability=0.5, seed=7)
    second = [http.get("/athlete", headers=headers).status_code for _ in range(40)]
    assert first == second
    assert 8 < first.count(500) < 32
    assert sim.control.faults()[0]["fired"] == first.count(500)


def test_counters_by_route_template(http, sim) -> None:
    headers = bearer(sim)
    ids = [a["id"] for a in sim.control.activities()[:3]]
    for activity_id in ids:
        http.get(f"/activities/{activity_id}", headers=headers)
    http.get("/athlete", headers=headers)
    requests = sim.control.counters()["requests"]
    assert requests["GET /api/v3/activities/{id:int}"] == 3
    assert requests["GET /api/v3/athlete"] == 1
