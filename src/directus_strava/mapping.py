"""Turning a Strava activity into a Directus item.

The default mapping fills the collection that `directus-strava setup` creates.
People with a trip-log collection of their own point MAPPING_FUNCTION at a
function `(activity, extras) -> dict` of theirs; `extras` carries what the
importer derived (GPX file id, route, start point, place names).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from directus_strava.errors import ConfigError

Mapping_ = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]

# XML 1.0 and most databases choke on C0 controls; keep tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
INT32 = 2**31 - 1

FLOATS = (
    "distance", "total_elevation_gain", "elev_high", "elev_low",
    "average_speed", "max_speed", "average_heartrate", "max_heartrate",
    "average_watts", "kilojoules", "calories", "average_cadence", "average_temp",
    "suffer_score",
)  # fmt: skip
INTEGERS = (
    "moving_time", "elapsed_time", "max_watts", "weighted_average_watts",
    "kudos_count", "comment_count", "athlete_count", "photo_count",
    "achievement_count", "pr_count",
)  # fmt: skip
BOOLEANS = ("commute", "trainer", "manual", "private", "device_watts")
TEXTS = ("description", "private_note")
STRINGS = ("timezone", "visibility", "gear_id", "device_name", "external_id")


def clean_text(value: Any, limit: int | None = None) -> str | None:
    """Text without control characters (None stays None)."""
    if value is None:
        return None
    text = _CONTROL.sub("", str(value))
    return text[:limit] if limit else text


def default_mapping(
    activity: Mapping[str, Any], extras: Mapping[str, Any]
) -> dict[str, Any]:
    """The item for the collection created by `directus-strava setup`."""
    item: dict[str, Any] = {
        "id": int(activity["id"]),
        "name": clean_text(activity.get("name"), 255) or "",
        "sport_type": clean_text(activity.get("sport_type") or activity.get("type")),
        "start_date": _utc(activity.get("start_date")),
        "start_date_local": _local(activity.get("start_date_local")),
        "athlete_id": _athlete(activity),
        "gear_name": clean_text((activity.get("gear") or {}).get("name")),
        "strava_url": f"https://www.strava.com/activities/{int(activity['id'])}",
        "photos": activity.get("photo_list"),
    }
    item.update({name: _float(activity.get(name)) for name in FLOATS})
    item.update({name: _int(activity.get(name)) for name in INTEGERS})
    # Strava's photo_count counts Instagram photos only; this counts them all.
    item["photo_count"] = _int(
        activity.get("total_photo_count", activity.get("photo_count"))
    )
    item.update({name: _bool(activity.get(name)) for name in BOOLEANS})
    item.update({name: clean_text(activity.get(name)) for name in TEXTS})
    item.update({name: clean_text(activity.get(name), 255) for name in STRINGS})
    item.update(extras)
    return item


def load_mapping(spec: str | None) -> Mapping_:
    """The mapping function named by MAPPING_FUNCTION (`module:function`)."""
    if not spec:
        return default_mapping
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"MAPPING_FUNCTION is not valid ({exc}): set it to `module:function` "
            "of an importable function taking (activity, extras)."
        ) from None
    if not callable(function):
        raise ConfigError(f"MAPPING_FUNCTION {spec} is not a function.")
    mapping: Mapping_ = function
    return mapping


def _athlete(activity: Mapping[str, Any]) -> int | None:
    athlete = activity.get("athlete") or {}
    return _int(athlete.get("id"), limit=2**63 - 1)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    # Absurd values stay in `raw`; the typed field gets none rather than a 500.
    return number if math.isfinite(number) and abs(number) < 1e12 else None


def _int(value: Any, limit: int = INT32) -> int | None:
    number = _float(value)
    if number is None or abs(number) > limit:
        return None
    return int(number)


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _utc(value: Any) -> str | None:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _local(value: Any) -> str | None:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def _parse(value: Any) -> datetime | None:
    # Directus answers malformed dates with a 500; validate before writing.
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
