"""A user's own mapping, as MAPPING_FUNCTION would name it (used by tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def to_trip(activity: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """A trip-log row: title, where it started, and the GPX file."""
    return {
        "id": activity["id"],
        "title": f"{activity['name']} ({activity.get('sport_type')})",
        "country": extras.get("start_country_code"),
        "track": extras.get("gpx"),
    }
