"""Shared pytest fixtures. Keep each section small; add new ones under a heading."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import local_directus
import secret_watch
from local_directus import Instance

# --- Directus ----------------------------------------------------------------
# One real Directus per flavour for the whole session: starting one takes
# 10-25 s on two cores. Tests share it, so each test should use its own
# collection names (or clean up after itself).


# Directus 12's Core license allows 25 active collections, so collections a
# test module creates are dropped when the module ends.
RUNNING: dict[str, Instance] = {}


def _directus(
    flavour: local_directus.Flavour, factory: pytest.TempPathFactory
) -> Iterator[Instance]:
    folder = factory.mktemp(f"directus-{flavour}")
    with local_directus.running(flavour, folder) as instance:
        RUNNING[flavour] = instance
        yield instance
        RUNNING.pop(flavour, None)


def _collections(instance: Instance) -> set[str]:
    response = httpx.get(
        f"{instance.url}/collections",
        headers={"Authorization": f"Bearer {instance.admin_token}"},
        timeout=60,
    )
    response.raise_for_status()
    names = {c["collection"] for c in response.json()["data"]}
    return {name for name in names if not name.startswith("directus_")}


@pytest.fixture(scope="module", autouse=True)
def _drop_module_collections() -> Iterator[None]:
    before = {flavour: _collections(i) for flavour, i in RUNNING.items()}
    yield
    for flavour, instance in list(RUNNING.items()):
        for name in _collections(instance) - before.get(flavour, set()):
            httpx.delete(
                f"{instance.url}/collections/{name}",
                headers={"Authorization": f"Bearer {instance.admin_token}"},
                timeout=60,
            )


@pytest.fixture(scope="session")
def directus_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """A Directus on SQLite, started once per test session."""
    yield from _directus("sqlite", tmp_path_factory)


@pytest.fixture(scope="session")
def directus_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """A Directus on PostgreSQL with PostGIS, started once per test session."""
    yield from _directus("postgres", tmp_path_factory)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def directus(request: pytest.FixtureRequest) -> Instance:
    """Each flavour of Directus in turn; tests using it run once per flavour."""
    instance: Instance = request.getfixturevalue(f"directus_{request.param}")
    return instance


# --- Secrets never leak (issue 9) --------------------------------------------
# Every log record of the session goes to one file, and every secret the
# session makes (client secrets, codes, tokens, Directus passwords and tokens)
# is remembered; at the end no log line, HTTP error body or file under the
# base temporary directory (Directus's own folders aside) may hold one of
# them, or the run fails. See tests/secret_watch.py.


@pytest.fixture(scope="session", autouse=True)
def _secret_watch(tmp_path_factory: pytest.TempPathFactory) -> None:
    secret_watch.start(tmp_path_factory.getbasetemp() / "session.log")


@pytest.fixture(autouse=True)
def _library_lines_watched() -> Iterator[None]:
    # A CLI run in-process sets httpx to WARNING; the tests after it would
    # otherwise log no request lines for the watch to read.
    yield
    secret_watch.keep_library_lines()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a planted secret shows up anywhere it must not."""
    if secret_watch.WATCH.log_file is None:
        return
    found = secret_watch.leaks(secret_watch.WATCH.log_file.parent)
    if not found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "secrets leaked", red=True)
        for line in found:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
