"""The simulated world: athletes and their activities, and how they change."""

from __future__ import annotations

import bisect
import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from strava_simulator import generator
from strava_simulator.clock import parse_time
from strava_simulator.generator import ActivitySpec, Athlete, SeedOptions


@dataclass(frozen=True)
class Change:
    """What an edit changed, in the words of a webhook `updates` object."""

    updates: dict[str, str]
    privacy: str | None  # "private", "public" or None


class World:
    """All athletes and activities, kept as small specs."""

    def __init__(self) -> None:
        self.seed = 0
        self.athletes: dict[int, Athlete] = {}
        self.activities: dict[int, ActivitySpec] = {}
        self._by_athlete: dict[int, list[tuple[int, int]]] = {}

    def populate(
        self, seed: int, athletes: int, per_athlete: int, now: float,
        options: SeedOptions,
    ) -> None:  # fmt: skip
        """Replace everything with a freshly seeded world."""
        self.__init__()  # type: ignore[misc]
        self.seed = seed
        people = generator.make_athletes(seed, athletes, now)
        self.athletes = {athlete.id: athlete for athlete in people}
        for spec in generator.make_activities(seed, people, per_athlete, now, options):
            self._insert(spec)
        if options.recorded and people:
            self._insert(recorded_activity(people[0]))

    def _insert(self, spec: ActivitySpec) -> None:
        """Index `spec` by id and by its athlete's start times."""
        self.activities[spec.id] = spec
        entries = self._by_athlete.setdefault(spec.athlete_id, [])
        bisect.insort(entries, (spec.start, spec.id))

    def first_athlete(self) -> Athlete | None:
        """The athlete the consent page offers first."""
        return next(iter(self.athletes.values()), None)

    def listing(
        self, athlete_id: int, before: float | None, after: float | None,
        include_private: bool,
    ) -> list[ActivitySpec]:  # fmt: skip
        """The athlete's activities newest first, filtered like the API does."""
        found = []
        for start, activity_id in reversed(self._by_athlete.get(athlete_id, [])):
            if before is not None and start >= before:
                continue
            if after is not None and start <= after:
                break
            spec = self.activities[activity_id]
            if spec.private and not include_private:
                continue
            found.append(spec)
        return found

    def create(
        self, athlete_id: int, fields: dict[str, Any], now: float
    ) -> ActivitySpec:
        """A new activity of `athlete_id` that ended just now."""
        athlete = self.athletes[athlete_id]
        rng = random.Random(f"{self.seed}:created:{len(self.activities)}")
        start = int(parse_time(fields["start_date"])) if "start_date" in fields else 0
        activity_id = max(self.activities, default=generator.FIRST_ACTIVITY_ID) + 1_000
        spec = generator.new_spec(
            rng,
            self.seed,
            athlete,
            start or int(now),
            activity_id,
            fields.get("sport_type"),
        )
        if fields.get("manual"):
            spec.kind = "manual"
        self._apply(spec, fields)
        if not start:
            spec.start = int(now) - _elapsed(spec)
        self._insert(spec)
        return spec

    def update(self, activity_id: int, fields: dict[str, Any]) -> Change:
        """Edit an activity and say which documented fields changed."""
        spec = self.activities[activity_id]
        before = (spec.name, spec.sport, spec.private)
        self._apply(spec, fields)
        updates: dict[str, str] = {}
        if spec.name != before[0]:
            updates["title"] = spec.name
        if spec.sport != before[1]:
            updates["type"] = spec.sport
        privacy = None
        if spec.private != before[2]:
            updates["private"] = "true" if spec.private else "false"
            privacy = "private" if spec.private else "public"
        return Change(updates=updates, privacy=privacy)

    def _apply(self, spec: ActivitySpec, fields: dict[str, Any]) -> None:
        """Copy the editable fields present in `fields` onto `spec`."""
        if "name" in fields:
            spec.name = str(fields["name"])
        if "sport_type" in fields:
            spec.sport = _sport(str(fields["sport_type"]))
        if "type" in fields:
            spec.sport = _sport(str(fields["type"]))
        if "visibility" in fields:
            spec.visibility = str(fields["visibility"])
        if "private" in fields:
            spec.visibility = "only_me" if fields["private"] else "everyone"
        for key in ("description", "private_note"):
            if key in fields:
                setattr(spec, key, str(fields[key] or ""))
        if "commute" in fields:
            spec.commute = bool(fields["commute"])

    def delete(self, activity_id: int) -> ActivitySpec:
        """Remove an activity for good."""
        spec = self.activities.pop(activity_id)
        self._by_athlete[spec.athlete_id].remove((spec.start, spec.id))
        return spec

    def catalogue(self, athlete_id: int | None) -> list[dict[str, Any]]:
        """Cheap facts about every activity, for tests to pick from."""
        rows = []
        for spec in self.activities.values():
            if athlete_id is not None and spec.athlete_id != athlete_id:
                continue
            rows.append(_row(spec))
        rows.sort(key=lambda row: (row["start"], row["id"]), reverse=True)
        return rows


def _sport(name: str) -> str:
    """A sport the generator knows; unknown ones fall back to Run."""
    return name if name in generator.SPORTS else "Run"


def _elapsed(spec: ActivitySpec) -> int:
    """Elapsed seconds of `spec` without rendering anything heavy."""
    plan = spec.track()
    if plan is None:
        return generator.manual_figures(spec)[1]
    return plan.elapsed_time


def _row(spec: ActivitySpec) -> dict[str, Any]:
    """One catalogue row."""
    plan = spec.track() if spec.kind == "gps" else None
    return {
        "id": spec.id,
        "athlete_id": spec.athlete_id,
        "name": spec.name,
        "sport_type": spec.sport,
        "start": spec.start,
        "visibility": spec.visibility,
        "manual": spec.kind == "manual",
        "recorded": spec.kind == "recorded",
        "tags": list(spec.tags),
        "points": plan.points if plan else 0,
    }


def recorded_activity(owner: Athlete) -> ActivitySpec:
    """The real recorded activity 1946417534, handed to `owner`."""
    body = _data("1946417534.json")
    spec = ActivitySpec(
        id=int(body["id"]),
        athlete_id=owner.id,
        sport=str(body["sport_type"]),
        town=owner.town,
        start=int(parse_time(body["start_date"])),
        seed=0,
        name=str(body["name"]),
        gear_id=body.get("gear_id"),
        kind="recorded",
        description=str(body.get("description") or ""),
        tags=["recorded"],
        recorded=body,
    )
    return spec


def recorded_streams() -> dict[str, Any]:
    """The recorded streams of 1946417534, keyed by type."""
    return dict(_data("1946417534.streams.json"))


def _data(name: str) -> dict[str, Any]:
    """A JSON file shipped in `strava_simulator/data`."""
    text = resources.files("strava_simulator").joinpath("data", name).read_text("utf-8")
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded
