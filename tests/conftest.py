"""Shared pytest fixtures. Keep each section small; add new ones under a heading."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import local_directus
from local_directus import Instance

# --- Directus ----------------------------------------------------------------
# One real Directus per flavour for the whole session: starting one takes
# 10-25 s on two cores. Tests share it, so each test should use its own
# collection names (or clean up after itself).


def _directus(
    flavour: local_directus.Flavour, factory: pytest.TempPathFactory
) -> Iterator[Instance]:
    folder = factory.mktemp(f"directus-{flavour}")
    with local_directus.running(flavour, folder) as instance:
        yield instance


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
