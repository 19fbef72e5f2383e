"""Watch a whole test session for secrets leaking into logs, pages or files.

`start()` (from conftest's pytest_configure) records every secret the
session creates or is given: each simulator's client secret, each code and
token a simulator issues, each local Directus's admin password and token,
each service user token `schema.setup` makes, and SERVICE_SECRET_KEY values.
It also sends every log record of the process to one file and keeps the body
of every HTTP error answer any httpx client receives (the service's error
pages seen by tests included).

`leaks(basetemp)` (from pytest_sessionfinish) then looks for those values in
the log file, the error bodies and every file under pytest's base temporary
directory, except the folders of local Directus instances: Directus itself
stores its admin password's settings file (instance.json) and static tokens
in its own database, which is where they belong.

A shortcoming: processes started by tests (a service under SIGKILL, a CLI run
through subprocess) are covered only through the files they write (their
logs land under the base temporary directory); their in-memory answers and
the simulators they might start are not watched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Shorter values could match by chance in binary files.
MIN_LENGTH = 12
MAX_FILE_BYTES = 64 * 1024 * 1024
# What makes a folder Directus's own (local_directus writes it there).
DIRECTUS_MARK = "instance.json"


@dataclass
class Watch:
    """The planted values and where the session's output went."""

    log_file: Path | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    error_bodies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plant(self, what: str, value: object) -> None:
        """Remember a secret (with what it is, for the report)."""
        text = str(value or "")
        if len(text) >= MIN_LENGTH:
            with self.lock:
                self.secrets.setdefault(text, what)


WATCH = Watch()


def plant(what: str, value: object) -> None:
    """Remember a secret a test made up itself (a password, a key)."""
    WATCH.plant(what, value)


def start(log_file: Path) -> None:
    """Begin recording: log file, secrets as they are made, error bodies."""
    WATCH.log_file = log_file
    _log_to(log_file)
    _watch_simulator()
    _watch_directus()
    _watch_vault()
    _watch_http()


class _NotTheBrowser(logging.Filter):
    """Leaves out the tests' own browser following Strava back with its code.

    Tests play the browser with httpx, which logs the callback URL, code and
    all. In a deployment that request is the browser's, never logged by the
    service (whose request lines carry the path only), so it proves nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "httpx":
            return True
        return "/oauth/callback?" not in record.getMessage()


@contextlib.contextmanager
def unlogged() -> Iterator[None]:
    """For a request a test sends with a secret in its URL on purpose."""
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        httpx_log.setLevel(level)


def keep_library_lines() -> None:
    """Undo what quietened httpx (the CLI does, for its users' screens)."""
    logging.getLogger("httpx").setLevel(logging.NOTSET)


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_NotTheBrowser())
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    # INFO from every library (httpx logs each request's URL), DEBUG from ours.
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    logging.getLogger("directus_strava").setLevel(logging.DEBUG)


def _watch_simulator() -> None:
    from strava_simulator import app, oauth

    init = app.Simulator.__init__

    def simulator_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        WATCH.plant("a simulator's client secret", self.config.client_secret)

    app.Simulator.__init__ = simulator_init  # type: ignore[method-assign]
    store = oauth.TokenStore
    _record_result(store, "issue_code", "an authorization code", lambda r: [r])
    _record_result(store, "issue", "a Strava token", _pair)
    _record_result(store, "renew", "a refreshed Strava token", _pair)


def _pair(result: Any) -> list[str]:
    access, refresh = result
    return [access.token, refresh.token]


def _record_result(owner: Any, name: str, what: str, values: Any) -> None:
    original = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        for value in values(result):
            WATCH.plant(what, value)
        return result

    setattr(owner, name, recorded)


def _watch_directus() -> None:
    from directus_strava import schema
    from local_directus import instance

    start_directus = instance.start

    def started(*args: Any, **kwargs: Any) -> Any:
        made = start_directus(*args, **kwargs)
        WATCH.plant("the Directus admin password", made.admin_password)
        WATCH.plant("the Directus admin token", made.admin_token)
        return made

    instance.start = started
    _record_result(schema, "_service_user", "a Directus service token", lambda r: [r])


def _watch_vault() -> None:
    from directus_strava import vault

    init = vault.Vault.__init__

    def vault_init(self: Any, secret_key: str) -> None:
        init(self, secret_key)
        WATCH.plant("SERVICE_SECRET_KEY", secret_key)

    vault.Vault.__init__ = vault_init  # type: ignore[method-assign]


def _watch_http() -> None:
    send = httpx.Client.send

    def recorded(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
        response = send(self, request, **kwargs)
        if response.status_code >= 400 and not kwargs.get("stream"):
            with WATCH.lock:
                WATCH.error_bodies.append(response.text[:20_000])
        return response

    httpx.Client.send = recorded  # type: ignore[method-assign]


def leaks(basetemp: Path) -> list[str]:
    """Every place a planted secret was found, as readable lines."""
    found: list[str] = []
    if WATCH.log_file is not None and WATCH.log_file.exists():
        found += _in_bytes(WATCH.log_file.read_bytes(), "the session log")
    for number, body in enumerate(WATCH.error_bodies):
        found += _in_bytes(body.encode(), f"HTTP error body #{number}")
    for path in _stored_files(basetemp):
        if path == WATCH.log_file:
            continue
        found += _in_bytes(path.read_bytes(), str(path))
    return found


def _stored_files(basetemp: Path) -> list[Path]:
    files = []
    for folder, subfolders, names in os.walk(basetemp):
        if DIRECTUS_MARK in names:
            subfolders.clear()
            continue
        for name in names:
            path = Path(folder) / name
            regular = path.is_file() and not path.is_symlink()
            if regular and path.stat().st_size <= MAX_FILE_BYTES:
                files.append(path)
    return files


def _in_bytes(data: bytes, where: str) -> list[str]:
    with WATCH.lock:
        planted = dict(WATCH.secrets)
    return [
        f"{what} found in {where}"
        for value, what in planted.items()
        if value.encode() in data
    ]
