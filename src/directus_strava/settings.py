"""Typed settings read from the environment and an optional `.env` file."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from directus_strava.errors import ConfigError


class OnDelete(StrEnum):
    """What happens to a Directus item when its activity leaves Strava."""

    REMOVE = "remove"
    MARK = "mark"


def default_data_dir() -> Path:
    """Where the local database lives unless SERVICE_DATA_DIR says otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "directus-strava"


# What to tell the user for each variable when it is missing or malformed.
HINTS: dict[str, str] = {
    "STRAVA_CLIENT_ID": "the number shown as Client ID at strava.com/settings/api",
    "STRAVA_CLIENT_SECRET": "the Client Secret shown at strava.com/settings/api",
    "STRAVA_WEB_URL": "Strava's web address, normally https://www.strava.com",
    "STRAVA_API_URL": "Strava's API base, normally https://www.strava.com/api/v3",
    "DIRECTUS_URL": "your Directus address, e.g. https://cms.example.org",
    "DIRECTUS_TOKEN": "a Directus static token (see `directus-strava setup`)",
    "SERVICE_PUBLIC_URL": "the address browsers and Strava use to reach this "
    "service, e.g. https://cms.example.org/strava",
    "SERVICE_PATH_PREFIX": "the path the service is mounted under, e.g. /strava, "
    "or leave it empty",
    "SERVICE_SECRET_KEY": "a random string of at least 32 characters, e.g. from "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`",
    "SERVICE_DATA_DIR": "a writable directory for the service's local database",
    "SERVICE_PORT": "a TCP port number between 1 and 65535",
    "DIRECTUS_COLLECTION": "a collection name of letters, digits and underscores",
    "ON_DELETE": "`remove` (default) or `mark`",
    "IMPORT_PHOTOS": "`true` to also fetch photo links (one more request each)",
    "MAPPING_FUNCTION": "`module:function` of your own mapping, or leave it unset",
    "WEBHOOKS": "`on` (default: Strava pushes changes) or `off` (poll instead)",
    "POLL_INTERVAL": "seconds between polls of Strava, at least 60 (default 1800)",
    "WEBHOOK_SILENCE": "seconds without any webhook event before polling starts "
    "as a fallback, at least 60 (default 86400)",
    "RECONCILE_DAYS": "how many days back the daily re-check of edits and "
    "deletions looks, 0 to turn it off (default 7)",
}


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    strava_client_id: Annotated[int, Field(gt=0)]
    strava_client_secret: SecretStr
    strava_web_url: AnyHttpUrl = AnyHttpUrl("https://www.strava.com")
    strava_api_url: AnyHttpUrl = AnyHttpUrl("https://www.strava.com/api/v3")
    directus_url: AnyHttpUrl
    directus_token: SecretStr
    directus_collection: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = (
        "strava_activities"
    )
    service_public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8700")
    service_path_prefix: str = ""
    service_host: str = "127.0.0.1"
    service_port: Annotated[int, Field(gt=0, lt=65536)] = 8700
    service_secret_key: Annotated[SecretStr, Field(min_length=32)]
    service_data_dir: Path = Field(default_factory=default_data_dir)
    service_demo: bool = False
    on_delete: OnDelete = OnDelete.REMOVE
    mapping_function: str | None = None
    import_photos: bool = False
    directus_session_cookie: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "directus_session_token"
    )
    allowed_roles: str = ""
    # Each poll costs one read request per athlete (more when many activities
    # changed): every 30 min is 48 of the default 1,000 daily reads.
    webhooks: bool = True
    poll_interval: Annotated[int, Field(ge=60)] = 1800
    webhook_silence: Annotated[int, Field(ge=60)] = 86400
    reconcile_days: Annotated[int, Field(ge=0, le=365)] = 7

    @field_validator("service_path_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    def strava_web(self) -> str:
        """Strava's web base URL without a trailing slash."""
        return str(self.strava_web_url).rstrip("/")

    def strava_api(self) -> str:
        """Strava's API base URL without a trailing slash."""
        return str(self.strava_api_url).rstrip("/")

    def directus(self) -> str:
        """Directus's base URL without a trailing slash."""
        return str(self.directus_url).rstrip("/")

    def public(self) -> str:
        """The service's public base URL without a trailing slash."""
        return str(self.service_public_url).rstrip("/")

    def roles(self) -> frozenset[str]:
        """Directus role names or ids allowed besides admins."""
        return frozenset(filter(None, map(str.strip, self.allowed_roles.split(","))))


def load(**overrides: Any) -> Settings:
    """Read the settings, turning the first problem into one plain sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_sentence(exc)) from None


def _sentence(exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = str(error["loc"][0]).upper() if error["loc"] else "a setting"
    hint = HINTS.get(name, "a valid value")
    if error["type"] == "missing":
        return f"{name} is not set: set it to {hint}."
    return f"{name} is not valid ({error['msg'].lower()}): set it to {hint}."
