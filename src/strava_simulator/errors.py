"""Strava-shaped error responses, raised as exceptions inside handlers."""

from __future__ import annotations

from starlette.responses import JSONResponse


class StravaError(Exception):
    """An error Strava would answer with `status` and a fault list."""

    def __init__(
        self, status: int, message: str, resource: str, field: str, code: str
    ) -> None:
        super().__init__(f"{status} {message}: {resource}.{field} {code}")
        self.status = status
        self.body = {
            "message": message,
            "errors": [{"resource": resource, "field": field, "code": code}],
        }

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        """The error as Strava sends it."""
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def bad_request(resource: str, field: str, code: str = "invalid") -> StravaError:
    """A 400 "Bad Request", as the OAuth and subscription endpoints send."""
    return StravaError(400, "Bad Request", resource, field, code)


def not_found(resource: str = "Activity") -> StravaError:
    """A 404 for a record the token may not see or that does not exist."""
    return StravaError(404, "Record Not Found", resource, "id", "invalid")


def invalid_token() -> StravaError:
    """A 401 for an unknown, expired or revoked token (recorded shape)."""
    return StravaError(401, "Authorization Error", "Application", "", "invalid")


def missing_token() -> StravaError:
    """A 401 for a request that carried no bearer token."""
    return StravaError(401, "Authorization Error", "Athlete", "access_token", "missing")


def missing_scope(permission: str) -> StravaError:
    """A 401 for a token without the needed scope, as Strava words it."""
    return StravaError(
        401, "Authorization Error", "AccessToken", f"{permission}_permission", "missing"
    )


def rate_limited() -> StravaError:
    """The documented 429 body."""
    return StravaError(
        429, "Rate Limit Exceeded", "Application", "rate limit", "exceeded"
    )
