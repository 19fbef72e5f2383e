"""The one error tree of directus-strava.

Vendor errors (httpx, Strava, Directus) are translated into these at the edge
that meets them. Every message says what failed and what to do next; none
contains a secret.
"""


class DirectusStravaError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(DirectusStravaError):
    """A setting is missing or malformed."""


class SecretKeyError(ConfigError):
    """Stored secrets cannot be decrypted with the configured secret key."""


class StravaError(DirectusStravaError):
    """Strava answered with an error we cannot work around."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StravaUnavailable(StravaError):
    """Strava could not be reached or answered 5xx; retrying later may help."""


class RateLimited(StravaError):
    """Strava's rate budget is spent until the given epoch second."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message, status=429)
        self.until = until


class AuthorizationError(StravaError):
    """An athlete's authorization is missing, revoked or lacks a scope."""


class NotFound(StravaError):
    """The activity or athlete does not exist on Strava (or is not visible)."""


class OAuthError(DirectusStravaError):
    """The OAuth flow failed: denied, forged state, reused code."""


class DirectusError(DirectusStravaError):
    """Directus refused a request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def missing(self) -> bool:
        """True when the thing asked for is not there.

        Directus answers 403, not 404, for a collection, field or item that
        does not exist, so that existence is not disclosed to the caller.
        """
        return self.status in (403, 404)


class DirectusUnavailable(DirectusError):
    """Directus could not be reached or answered 5xx; retrying later may help."""


class WebhookRejected(DirectusStravaError):
    """A webhook request was malformed, forged or unknown."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ArchiveError(DirectusStravaError):
    """A bulk export archive or one of its files cannot be read."""


class AccessDenied(DirectusStravaError):
    """A visitor may not use the pages: unknown, refused by Directus, or a role
    that is not allowed."""
