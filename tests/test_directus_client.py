"""The Directus client against a real Directus: what the importer relies on."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from directus_strava.directus import DirectusClient

pytestmark = pytest.mark.directus


@pytest.mark.parametrize("size", [1_000, 2_000_000], ids=["small", "2 MB"])
def test_an_upload_under_a_known_id_replaces_the_file(directus: Any, size: int) -> None:
    """A retried upload (its first answer lost) replaces the file, never doubles it.

    Directus refuses a second POST under the same id: a small file with a 400,
    a large one, still on its way, by closing the connection.
    """
    client = DirectusClient(directus.url, directus.admin_token)
    file_id = str(uuid.uuid4())
    first = b"a" * size
    second = b"b" * size
    try:
        assert client.upload(first, "x.gpx", "text/plain", None, "x", file_id=file_id)
        again = client.upload(second, "x.gpx", "text/plain", None, "x", file_id=file_id)
        assert again == file_id
        stored = httpx.get(
            f"{directus.url}/assets/{file_id}",
            headers={"Authorization": f"Bearer {directus.admin_token}"},
            timeout=30,
        )
        assert stored.content == second
        listed = client.request(
            "GET", "/files", params={"filter[id][_eq]": file_id, "fields": "id"}
        )
        assert len(listed) == 1
    finally:
        client.delete_file(file_id)
        client.close()
