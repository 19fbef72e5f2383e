"""Directus's REST API, spoken over HTTP; the only module that calls it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from typing import Any

import httpx

from directus_strava.errors import DirectusError, DirectusUnavailable

log = logging.getLogger(__name__)


# Requests that change nothing, so a connection lost under them may be retried.
READS = frozenset({"GET", "HEAD", "SEARCH"})


class DirectusClient:
    """A Directus instance, as one token (or one browser session) sees it."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 60,
        cookies: dict[str, str] | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, cookies=cookies
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; returns the `data` member (None for 204)."""
        try:
            response = self._send(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DirectusUnavailable(
                f"Directus at {self.url} could not be reached ({type(exc).__name__})"
                ": check DIRECTUS_URL and that Directus is running."
            ) from None
        _raise_for(response, method, path)
        if response.status_code == 204 or not response.content:
            return None
        return response.json().get("data")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # Directus resets a kept-alive connection after refusing an upload
            # it had not read to the end, and Node closes idle ones after 5 s;
            # a read is safe to send again, on a new connection.
            if method not in READS:
                raise
        return self._http.request(method, path, **kwargs)

    def health(self) -> bool:
        """True when Directus answers /server/health with ok."""
        try:
            response = self._http.get("/server/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def me(self) -> dict[str, Any]:
        """The user behind the token or session."""
        result: dict[str, Any] = self.request("GET", "/users/me")
        return result

    def items(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        """Items of a collection, filtered by Directus query parameters."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/items/{collection}", params=params
        )
        return result

    def items_by_id(
        self, collection: str, ids: Iterable[int], fields: str = "*"
    ) -> list[dict[str, Any]]:
        """Items whose primary key is in `ids` (a SEARCH keeps URLs short)."""
        query = {"query": {"filter": {"id": {"_in": list(ids)}}, "limit": -1}}
        query["query"]["fields"] = fields.split(",")
        result: list[dict[str, Any]] = self.request(
            "SEARCH", f"/items/{collection}", json=query
        )
        return result

    def merge(self, collection: str, items: list[dict[str, Any]]) -> None:
        """Create or update items by primary key in one transaction."""
        if not items:
            return
        body = json.dumps([{"collection": collection, "items": items}])
        self.request(
            "POST",
            "/utils/import",
            params={"mode": "merge"},
            content=body,
            headers={"Content-Type": "application/json"},
        )

    def delete_item(self, collection: str, item_id: int) -> None:
        """Remove one item; a missing one is fine."""
        try:
            self.request("DELETE", f"/items/{collection}/{item_id}")
        except DirectusError as exc:
            if not exc.missing:
                raise

    def upload(
        self,
        content: bytes,
        filename: str,
        mime: str,
        folder: str | None,
        title: str,
        replace: str | None = None,
        file_id: str | None = None,
    ) -> str:
        """Store a file (or replace one in place); returns its id.

        With `file_id`, the upload is repeatable: a file already stored under
        that id (by an upload whose answer was lost) is replaced, not doubled.
        """
        # Directus reads metadata only from fields sent before the file part.
        fields: dict[str, str] = {"title": title}
        if folder:
            fields["folder"] = folder
        # As a file, httpx sends it in small pieces; as bytes, the HTTP layer
        # copies it whole once more (25 MB for a day-long GPX).
        files = {"file": (filename, io.BytesIO(content), mime)}
        if replace:
            data = self.request("PATCH", f"/files/{replace}", data=fields, files=files)
        elif file_id:
            data = self._upload_as(file_id, fields, files)
        else:
            data = self.request("POST", "/files", data=fields, files=files)
        return str(data["id"])

    def _upload_as(
        self, file_id: str, fields: dict[str, str], files: dict[str, Any]
    ) -> Any:
        try:
            return self.request(
                "POST", "/files", data={"id": file_id, **fields}, files=files
            )
        except DirectusError as exc:
            # Directus refuses an id it has with a 400 or, when it does so
            # while the file is still on its way, by closing the connection.
            refused = exc.status == 400 or exc.status is None
            if not (refused and self._file_exists(file_id)):
                raise
        return self.request("PATCH", f"/files/{file_id}", data=fields, files=files)

    def _file_exists(self, file_id: str) -> bool:
        found = self.request(
            "GET", "/files", params={"filter[id][_eq]": file_id, "fields": "id"}
        )
        return bool(found)

    def delete_file(self, file_id: str) -> None:
        """Remove a file; a missing one is fine."""
        try:
            self.request("DELETE", f"/files/{file_id}")
        except DirectusError as exc:
            if not exc.missing:
                raise

    def download(self, file_id: str) -> bytes:
        """A stored file's content."""
        try:
            response = self._http.get(f"/assets/{file_id}")
        except httpx.HTTPError as exc:
            raise DirectusUnavailable(f"Directus unreachable: {exc}") from None
        _raise_for(response, "GET", f"/assets/{file_id}")
        return response.content

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()


def _raise_for(response: httpx.Response, method: str, path: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _message(response)
    where = f"{method} {path}"
    if status >= 500 or status == 503:
        raise DirectusUnavailable(
            f"Directus failed on {where} (HTTP {status}: {detail}).", status
        )
    if status == 401:
        raise DirectusError(
            f"Directus refused {where}: the token or session is not valid "
            "(check DIRECTUS_TOKEN).",
            status,
        )
    if status == 403:
        raise DirectusError(
            f"Directus forbade {where} (HTTP 403: {detail}): the collection may "
            "be missing (run `directus-strava setup`) or the token lacks "
            "permission.",
            status,
        )
    raise DirectusError(f"Directus refused {where} (HTTP {status}: {detail}).", status)


def _message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("message", "")) for e in errors)[:300]
    except (ValueError, AttributeError):
        return response.text[:200]
