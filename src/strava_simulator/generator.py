"""Seeded athletes and activities shaped like Strava's own JSON.

Only small specs live in memory; summaries, details and streams are derived
from a spec on demand, the same every time for the same seed and id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from strava_simulator import streams
from strava_simulator.clock import iso

DAY = 86_400
FIRST_ACTIVITY_ID = 12_000_000_000
ID_STRIDE = 1_000


@dataclass(frozen=True)
class Town:
    """A real place activities start from."""

    name: str
    state: str
    country: str
    lat: float
    lng: float
    elevation: float
    zone: str
    temperature: float


TOWNS = (
    Town("Keswick", "England", "United Kingdom", 54.6014, -3.1347, 80,
         "Europe/London", 11),
    Town("Berlin", "Berlin", "Germany", 52.5163, 13.3777, 35, "Europe/Berlin", 12),
    Town("Boulder", "CO", "United States", 40.0150, -105.2705, 1655,
         "America/Denver", 14),
    Town("Kyoto", "Kyoto", "Japan", 35.0116, 135.7681, 50, "Asia/Tokyo", 17),
    Town("Cape Town", "Western Cape", "South Africa", -33.9249, 18.4241, 25,
         "Africa/Johannesburg", 19),
    Town("Queenstown", "Otago", "New Zealand", -45.0312, 168.6626, 330,
         "Pacific/Auckland", 10),
)  # fmt: skip


@dataclass(frozen=True)
class Sport:
    """Typical figures of one sport type."""

    name: str
    distance: tuple[float, float]
    speed: tuple[float, float]
    heartrate: float
    cadence: float
    watts: float
    hilliness: float
    calories_per_km: float
    words: tuple[str, ...]


SPORTS = {
    "Ride": Sport("Ride", (18_000, 90_000), (5.5, 8.5), 132, 86, 185, 60, 25,
                  ("Ride", "Spin", "Loop", "Climb", "Gravel")),
    "Run": Sport("Run", (4_000, 21_000), (2.6, 3.9), 148, 84, 0, 25, 65,
                 ("Run", "Tempo", "Easy miles", "Long run", "Intervals")),
    "Hike": Sport("Hike", (6_000, 20_000), (1.0, 1.5), 118, 52, 0, 120, 70,
                  ("Hike", "Ridge walk", "Summit", "Fell day")),
    "Walk": Sport("Walk", (2_000, 8_000), (1.1, 1.6), 100, 55, 0, 15, 55,
                  ("Walk", "Stroll", "Dog walk", "Evening walk")),
}  # fmt: skip
SPORT_NAMES = ("Run", "Ride", "Walk", "Hike")
SPORT_WEIGHTS = (45, 35, 12, 8)
FIRST_NAMES = ("Ada", "Kenji", "Thandi", "Maren", "Luis", "Aroha", "Priya", "Jonas")
LAST_NAMES = ("Okafor", "Tanaka", "Nkosi", "Lindqvist", "Ortega", "Ngata", "Rao")
WEIRD_NAME = "Café & <Bergtour> 🏔️🚴 \u0007bell\ttab \"quoted\" 'single' \\ back"


@dataclass
class Athlete:
    """A simulated athlete: profile and gear."""

    id: int
    firstname: str
    lastname: str
    town: Town
    sex: str
    created_at: float
    bikes: list[dict[str, Any]]
    shoes: list[dict[str, Any]]

    @property
    def username(self) -> str:
        """A username derived from the name and id."""
        return f"{self.firstname}{self.lastname}{self.id % 1000}".lower()


@dataclass
class ActivitySpec:
    """The few fields an activity is generated from, plus edits made to it."""

    id: int
    athlete_id: int
    sport: str
    town: Town
    start: int
    seed: int
    name: str
    gear_id: str | None
    kind: str = "gps"  # gps, manual or recorded
    visibility: str = "everyone"
    elapsed: int = 0
    description: str = ""
    private_note: str = ""
    commute: bool = False
    photos: int = 0
    tags: list[str] = field(default_factory=list)
    recorded: dict[str, Any] | None = None

    @property
    def private(self) -> bool:
        """Strava's `private` flag: true for Only Me activities."""
        return self.visibility == "only_me"

    def track(self) -> streams.Plan | None:
        """The GPS plan, or None for manual and recorded activities."""
        if self.kind != "gps":
            return None
        sport = SPORTS[self.sport]
        rng = random.Random(f"{self.seed}:{self.id}:request")
        target = self.elapsed * 5.5 if self.elapsed else rng.uniform(*sport.distance)
        request = streams.TrackRequest(
            key=f"{self.seed}:{self.id}",
            lat=self.town.lat,
            lng=self.town.lng,
            elevation=self.town.elevation,
            distance=target,
            speed=rng.uniform(*sport.speed),
            cadence=sport.cadence,
            watts=sport.watts,
            heartrate=sport.heartrate,
            temperature=self.town.temperature,
            hilliness=sport.hilliness,
            elapsed=self.elapsed,
        )
        return streams.plan_track(request)


def make_athletes(seed: int, count: int, now: float) -> list[Athlete]:
    """`count` athletes with ids, names, home towns and gear."""
    rng = random.Random(f"{seed}:athletes")
    athletes = []
    used: set[int] = set()
    for index in range(count):
        athlete_id = rng.randint(20_000_000, 99_000_000)
        while athlete_id in used:
            athlete_id += 1
        used.add(athlete_id)
        athletes.append(_athlete(rng, athlete_id, index, now))
    return athletes


def _athlete(rng: random.Random, athlete_id: int, index: int, now: float) -> Athlete:
    """One athlete; the first lives in the first town, the rest anywhere."""
    town = TOWNS[index % len(TOWNS)]
    bikes = [_gear(rng, "b", "Road bike", True), _gear(rng, "b", "Gravel bike", False)]
    shoes = [_gear(rng, "g", "Trail shoes", True), _gear(rng, "g", "Road shoes", False)]
    return Athlete(
        id=athlete_id,
        firstname=FIRST_NAMES[(index + rng.randint(0, 7)) % len(FIRST_NAMES)],
        lastname=LAST_NAMES[(index + rng.randint(0, 6)) % len(LAST_NAMES)],
        town=town,
        sex=rng.choice(("M", "F")),
        created_at=now - rng.randint(800, 3000) * DAY,
        bikes=bikes,
        shoes=shoes,
    )


def _gear(rng: random.Random, prefix: str, name: str, primary: bool) -> dict[str, Any]:
    """A SummaryGear entry."""
    distance = rng.randint(50_000, 9_000_000)
    return {
        "id": f"{prefix}{rng.randint(1_000_000, 29_999_999)}",
        "primary": primary,
        "name": name,
        "nickname": None,
        "resource_state": 2,
        "retired": False,
        "distance": distance,
        "converted_distance": round(distance / 1000, 1),
    }


@dataclass(frozen=True)
class SeedOptions:
    """Choices for a seeded world beyond the counts."""

    days: int = 730
    specials: bool = True
    day_long: bool = True
    recorded: bool = False


def make_activities(
    seed: int, athletes: list[Athlete], per_athlete: int, now: float,
    options: SeedOptions,
) -> list[ActivitySpec]:  # fmt: skip
    """Activities for every athlete, ids rising with start time."""
    specs: list[ActivitySpec] = []
    for index, athlete in enumerate(athletes):
        rng = random.Random(f"{seed}:activities:{athlete.id}")
        starts = sorted(
            int(now - rng.uniform(0.05, options.days) * DAY) for _ in range(per_athlete)
        )
        for start in starts:
            specs.append(new_spec(rng, seed, athlete, start, 0))
        mine = specs[len(specs) - len(starts) :]
        if options.specials:
            _make_special(mine, first=index == 0, options=options)
    specs.sort(key=lambda spec: (spec.start, spec.athlete_id))
    for position, spec in enumerate(specs):
        spec.id = FIRST_ACTIVITY_ID + position * ID_STRIDE + spec.seed % 997
    return specs


def new_spec(
    rng: random.Random, seed: int, athlete: Athlete, start: int, activity_id: int,
    sport: str | None = None,
) -> ActivitySpec:  # fmt: skip
    """A plain GPS activity of `athlete` starting at `start`."""
    chosen = sport or rng.choices(SPORT_NAMES, SPORT_WEIGHTS)[0]
    town = athlete.town if rng.random() < 0.55 else rng.choice(TOWNS)
    gear = athlete.bikes if chosen == "Ride" else athlete.shoes
    spec = ActivitySpec(
        id=activity_id,
        athlete_id=athlete.id,
        sport=chosen,
        town=town,
        start=start,
        seed=seed * 1_000_003 + rng.randint(0, 10**9),
        name=_name(rng, chosen, town, start),
        gear_id=str(rng.choice(gear)["id"]),
        commute=chosen == "Ride" and rng.random() < 0.1,
    )
    spec.description = rng.choice(("", "", f"Lovely day around {town.name}."))
    return spec


def _name(rng: random.Random, sport: str, town: Town, start: int) -> str:
    """A name like people give: part of day, place, sometimes an emoji."""
    hour = datetime.fromtimestamp(start, ZoneInfo(town.zone)).hour
    part = "Morning" if hour < 12 else "Afternoon" if hour < 18 else "Evening"
    word = rng.choice(SPORTS[sport].words)
    style = rng.random()
    if style < 0.5:
        return f"{part} {word}"
    if style < 0.8:
        return f"{word} in {town.name}"
    return f"{word} {rng.choice(('☀️', '🌧️', '🏃', '🚴', '⛰️', '💪'))}"


def _make_special(mine: list[ActivitySpec], first: bool, options: SeedOptions) -> None:
    """Turn a few of an athlete's newest activities into edge cases."""
    newest = list(reversed(mine))
    if len(newest) > 1:
        _make_manual(newest[1])
    if len(newest) > 2:
        newest[2].visibility = "only_me"
        newest[2].private_note = "Felt rough; only I should see this."
        newest[2].tags.append("only_me")
    if len(newest) > 3:
        newest[3].name = WEIRD_NAME
        newest[3].description = "Line one\nLine <two> & three\n\u0001end 🎉"
        newest[3].private_note = 'Note with <b>markup</b> & "quotes"'
        newest[3].tags.append("weird_name")
    if len(newest) > 5:
        newest[5].photos = 2
        newest[5].tags.append("photos")
    if first and options.day_long and len(newest) > 4:
        newest[4].sport = "Ride"
        newest[4].elapsed = DAY - 1
        newest[4].name = "24 hours in the saddle"
        newest[4].tags.append("day_long")


def photos(spec: ActivitySpec, size: int) -> list[dict[str, Any]]:
    """GET /activities/{id}/photos: what the Strava app uploaded, in `size`."""
    start = iso(spec.start)
    return [
        {
            "unique_id": f"{spec.id:X}-{number:04X}",
            "athlete_id": spec.athlete_id,
            "activity_id": spec.id,
            "activity_name": spec.name,
            "post_id": None,
            "resource_state": 2,
            "caption": "View from the top" if number == 0 else "",
            "type": 1,
            "source": 1,
            "status": 3,
            "uploaded_at": start,
            "created_at": start,
            "created_at_local": start,
            "urls": {str(size): _photo_url(spec, number, size)},
            "placeholder_image": None,
            "sizes": {str(size): [size * 3 // 4, size]},
            "default_photo": number == 0,
            "cursor": None,
            "location": [spec.town.lat, spec.town.lng],
        }
        for number in range(spec.photos)
    ]


def _primary(photo: dict[str, Any]) -> dict[str, Any]:
    return {
        "unique_id": photo["unique_id"],
        "urls": photo["urls"],
        "source": photo["source"],
        "media_type": 1,
    }


def _photo_url(spec: ActivitySpec, number: int, size: int) -> str:
    return f"https://photos.example.invalid/{spec.id}-{number}-{size}.jpg"


def _make_manual(spec: ActivitySpec) -> None:
    """An entry typed in by hand: no GPS, no streams."""
    spec.kind = "manual"
    spec.sport = "Hike" if spec.sport == "Ride" else spec.sport
    spec.name = f"Manual {spec.sport.lower()} (no watch)"
    spec.tags.append("manual")


def local_time(spec: ActivitySpec) -> tuple[datetime, str]:
    """The local start time and Strava's timezone label for `spec`."""
    zone = ZoneInfo(spec.town.zone)
    local = datetime.fromtimestamp(spec.start, UTC).astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    standard = offset - (local.dst() or timedelta(0))
    minutes = int(standard.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    label = (
        f"(GMT{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}) {spec.town.zone}"
    )
    return local, label


def summary(spec: ActivitySpec) -> dict[str, Any]:
    """The SummaryActivity of `spec`, keys in Strava's order."""
    if spec.recorded is not None:
        return recorded_summary(spec)
    plan = spec.track()
    rng = random.Random(f"{spec.seed}:{spec.id}:summary")
    local, label = local_time(spec)
    offset = (local.utcoffset() or timedelta(0)).total_seconds()
    body = _head(spec, plan, rng)
    body.update(
        {
            "start_date": iso(spec.start),
            "start_date_local": local.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timezone": label,
            "utc_offset": offset,
        }
    )
    body.update(_social(spec, rng))
    body.update(_motion(spec, plan))
    return body


def _head(
    spec: ActivitySpec, plan: streams.Plan | None, rng: random.Random
) -> dict[str, Any]:
    """Identity, totals and type fields."""
    if plan is None:
        distance, moving = manual_figures(spec)
        elapsed, gain = moving, 0.0
    else:
        distance = round(plan.distance, 1)
        moving, elapsed = plan.moving_time, plan.elapsed_time
        gain = streams.totals(plan).elevation_gain
    return {
        "resource_state": 2,
        "athlete": {"id": spec.athlete_id, "resource_state": 1},
        "name": spec.name,
        "distance": distance,
        "moving_time": moving,
        "elapsed_time": elapsed,
        "total_elevation_gain": gain,
        "type": spec.sport,
        "sport_type": spec.sport,
        "workout_type": 0 if spec.sport == "Run" else None,
        "id": spec.id,
    }


def _social(spec: ActivitySpec, rng: random.Random) -> dict[str, Any]:
    """Counts, map and flags between the dates and the motion figures."""
    plan = spec.track()
    return {
        "location_city": None,
        "location_state": None,
        "location_country": None,
        "achievement_count": rng.randint(0, 4),
        "kudos_count": 0 if spec.private else rng.randint(0, 30),
        "comment_count": 0 if spec.private else rng.randint(0, 3),
        "athlete_count": 1 if spec.private else rng.choice((1, 1, 1, 2, 3)),
        "photo_count": 0,
        "map": {
            "id": f"a{spec.id}",
            "summary_polyline": streams.summary_polyline(plan) if plan else "",
            "resource_state": 2,
        },
        "trainer": False,
        "commute": spec.commute,
        "manual": spec.kind == "manual",
        "private": spec.private,
        "visibility": spec.visibility,
        "flagged": False,
        "gear_id": spec.gear_id,
        "start_latlng": list(plan.waypoints[0]) if plan else [],
        "end_latlng": list(plan.waypoints[-1]) if plan else [],
    }


def _motion(spec: ActivitySpec, plan: streams.Plan | None) -> dict[str, Any]:
    """Speeds, sensors and upload fields."""
    if plan is None:
        return _manual_motion(spec)
    figures = streams.totals(plan)
    body: dict[str, Any] = {
        "average_speed": round(plan.distance / plan.moving_time, 3),
        "max_speed": round(plan.distance / plan.moving_time * (1 + plan.wobble), 3),
        "average_cadence": figures.average_cadence,
    }
    if plan.watts:
        body.update(
            {
                "average_watts": figures.average_watts,
                "max_watts": figures.max_watts,
                "weighted_average_watts": round(figures.average_watts * 1.04),
                "device_watts": True,
                "kilojoules": round(figures.average_watts * plan.moving_time / 1000, 1),
            }
        )
    body.update(
        {
            "average_temp": figures.average_temp,
            "has_heartrate": True,
            "average_heartrate": figures.average_heartrate,
            "max_heartrate": figures.max_heartrate,
            "heartrate_opt_out": False,
            "display_hide_heartrate_option": True,
            "elev_high": figures.elev_high,
            "elev_low": figures.elev_low,
        }
    )
    body.update(_upload(spec, upload=True))
    effort = plan.moving_time / 60 * (figures.average_heartrate - 95) / 45
    body["suffer_score"] = float(round(max(1.0, effort)))
    return body


def _manual_motion(spec: ActivitySpec) -> dict[str, Any]:
    """Motion fields of a manual entry, as recorded ones look."""
    distance, moving = manual_figures(spec)
    body: dict[str, Any] = {
        "average_speed": round(distance / moving, 3),
        "max_speed": 0,
        "has_heartrate": False,
        "heartrate_opt_out": False,
        "display_hide_heartrate_option": False,
    }
    body.update(_upload(spec, upload=False))
    return body


def manual_figures(spec: ActivitySpec) -> tuple[float, int]:
    """Distance and moving time typed into a manual entry."""
    rng = random.Random(f"{spec.seed}:{spec.id}:manual")
    distance = round(rng.uniform(*SPORTS[spec.sport].distance) / 2, 1)
    return distance, int(distance / SPORTS[spec.sport].speed[0])


def _upload(spec: ActivitySpec, upload: bool) -> dict[str, Any]:
    """Upload ids (none for manual entries) and the closing counters."""
    upload_id = spec.id // 7 * 8 if upload else None
    return {
        "upload_id": upload_id,
        "upload_id_str": str(upload_id) if upload_id else None,
        "external_id": f"garmin_ping_{spec.id * 3}" if upload else None,
        "from_accepted_tag": False,
        "pr_count": 0,
        "total_photo_count": spec.photos,
        "has_kudoed": False,
    }


def detail(spec: ActivitySpec, athlete: Athlete, owner_private: bool) -> dict[str, Any]:
    """The DetailedActivity of `spec`; the private note only for its owner."""
    if spec.recorded is not None:
        return recorded_detail(spec, owner_private)
    body = summary(spec)
    plan = spec.track()
    body["resource_state"] = 3
    body["map"] = dict(body["map"], resource_state=3)
    body["map"]["polyline"] = streams.detailed_polyline(plan) if plan else ""
    body["description"] = spec.description or None
    body["calories"] = round(
        body["distance"] / 1000 * SPORTS[spec.sport].calories_per_km, 1
    )
    body["perceived_exertion"] = None
    body["prefer_perceived_exertion"] = None
    body["segment_efforts"] = []
    if plan is not None and spec.sport in ("Run", "Walk", "Hike"):
        body["splits_metric"] = splits(spec, plan, 1000.0)
        body["splits_standard"] = splits(spec, plan, 1609.34)
    body["laps"] = laps(spec, plan) if plan is not None else []
    body["gear"] = _gear_of(athlete, spec.gear_id)
    listed = photos(spec, 600)
    body["photos"] = {
        "primary": _primary(listed[0]) if listed else None,
        "use_primary_photo": bool(listed),
        "count": len(listed),
    }
    body["stats_visibility"] = [{"type": "heart_rate", "visibility": "everyone"}]
    body["hide_from_home"] = False
    body["device_name"] = (
        "Garmin Edge 840" if spec.sport == "Ride" else "Garmin Forerunner 265"
    )
    if plan is None:
        body["device_name"] = None
    body["embed_token"] = f"{spec.seed:x}{spec.id:x}"[:40]
    body["available_zones"] = ["heartrate"] if plan else []
    if owner_private:
        body["private_note"] = spec.private_note or None
    return body


def _gear_of(athlete: Athlete, gear_id: str | None) -> dict[str, Any] | None:
    """The SummaryGear with `gear_id`, if the athlete owns it."""
    for gear in athlete.bikes + athlete.shoes:
        if gear["id"] == gear_id:
            return dict(gear)
    return None


def laps(spec: ActivitySpec, plan: streams.Plan) -> list[dict[str, Any]]:
    """Auto laps every 1 km on foot and every 10 km on a bike."""
    length = 10_000.0 if spec.sport == "Ride" else 1_000.0
    laps = []
    for number, (begin, end) in enumerate(streams.pieces(plan, length), start=1):
        laps.append(_lap(spec, plan, number, begin, end))
    return laps


def _lap(
    spec: ActivitySpec, plan: streams.Plan, number: int, begin: float, end: float,
) -> dict[str, Any]:  # fmt: skip
    """One Lap, with indexes into the streams."""
    first, last = plan.index_at(begin), plan.index_at(end)
    metres = plan.distance_at(end) - plan.distance_at(begin)
    moving = max(1, round(end - begin))
    rates = [plan.heartrate_at(begin + (end - begin) * i / 8) for i in range(9)]
    return {
        "id": spec.id * 100 + number,
        "resource_state": 2,
        "name": f"Lap {number}",
        "activity": {"id": spec.id, "visibility": spec.visibility, "resource_state": 1},
        "athlete": {"id": spec.athlete_id, "resource_state": 1},
        "elapsed_time": last - first,
        "moving_time": moving,
        "start_date": iso(spec.start + first),
        "start_date_local": (local_time(spec)[0] + timedelta(seconds=first)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "distance": round(metres, 1),
        "average_speed": round(metres / moving, 2),
        "max_speed": round(max(plan.speed_at(begin), plan.speed_at(end)), 2),
        "lap_index": number,
        "split": number,
        "start_index": first,
        "end_index": last,
        "total_elevation_gain": round(
            max(0.0, plan.altitude_at(plan.distance_at(end))
                - plan.altitude_at(plan.distance_at(begin))), 1),
        "device_watts": bool(plan.watts),
        "average_heartrate": round(sum(rates) / len(rates), 1),
        "max_heartrate": float(round(max(rates))),
    }  # fmt: skip


def splits(
    spec: ActivitySpec, plan: streams.Plan, length: float
) -> list[dict[str, Any]]:
    """Splits per kilometre or mile, as on foot activities."""
    result = []
    for number, (begin, end) in enumerate(streams.pieces(plan, length), start=1):
        start_m, end_m = plan.distance_at(begin), plan.distance_at(end)
        moving = max(1, round(end - begin))
        speed = (end_m - start_m) / moving
        rates = [plan.heartrate_at(begin + (end - begin) * i / 8) for i in range(9)]
        result.append(
            {
                "distance": round(end_m - start_m, 1),
                "elapsed_time": plan.index_at(end) - plan.index_at(begin),
                "elevation_difference": round(
                    plan.altitude_at(end_m) - plan.altitude_at(start_m), 1
                ),
                "moving_time": moving,
                "split": number,
                "average_speed": round(speed, 2),
                "average_grade_adjusted_speed": round(speed * 1.02, 2),
                "average_heartrate": sum(rates) / len(rates),
                "pace_zone": 2,
            }
        )
    return result


SUMMARY_KEYS = (
    "resource_state", "athlete", "name", "distance", "moving_time", "elapsed_time",
    "total_elevation_gain", "type", "sport_type", "workout_type", "id", "start_date",
    "start_date_local", "timezone", "utc_offset", "location_city", "location_state",
    "location_country", "achievement_count", "kudos_count", "comment_count",
    "athlete_count", "photo_count", "map", "trainer", "commute", "manual", "private",
    "visibility", "flagged", "gear_id", "start_latlng", "end_latlng", "average_speed",
    "max_speed", "average_cadence", "average_watts", "max_watts",
    "weighted_average_watts", "device_watts", "kilojoules", "average_temp",
    "has_heartrate", "average_heartrate", "max_heartrate", "heartrate_opt_out",
    "display_hide_heartrate_option", "elev_high", "elev_low", "upload_id",
    "upload_id_str", "external_id", "from_accepted_tag", "pr_count",
    "total_photo_count", "has_kudoed", "suffer_score",
)  # fmt: skip


def recorded_summary(spec: ActivitySpec) -> dict[str, Any]:
    """The summary of the recorded activity: its detail cut down."""
    source = spec.recorded or {}
    body = {key: source[key] for key in SUMMARY_KEYS if key in source}
    body.update(_edits(spec, owner=spec.athlete_id))
    body["resource_state"] = 2
    body["map"] = {
        "id": source["map"]["id"],
        "summary_polyline": source["map"]["summary_polyline"],
        "resource_state": 2,
    }
    return body


def recorded_detail(spec: ActivitySpec, owner_private: bool) -> dict[str, Any]:
    """The recorded DetailedActivity with the edits made in the simulator."""
    body = dict(spec.recorded or {})
    body.update(_edits(spec, owner=spec.athlete_id))
    body["description"] = spec.description or body.get("description")
    if owner_private and spec.private_note:
        body["private_note"] = spec.private_note
    return body


def _edits(spec: ActivitySpec, owner: int) -> dict[str, Any]:
    """Fields of the recorded activity that the simulator lets change."""
    return {
        "athlete": {"id": owner, "resource_state": 1},
        "name": spec.name,
        "type": spec.sport,
        "sport_type": spec.sport,
        "private": spec.private,
        "visibility": spec.visibility,
    }
