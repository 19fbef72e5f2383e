"""The service's local database: tokens, the job queue, the import ledger.

SQLite in WAL mode, one connection per thread. Every schema change is a new
entry in MIGRATIONS, applied in order at start-up and recorded in
`PRAGMA user_version`, so an older database is upgraded in place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from directus_strava.errors import ConfigError

# SQLite's largest integer: ids from outside past it would overflow a query.
MAX_INTEGER = 2**63 - 1

MIGRATIONS: list[str] = [
    # 1: athletes and their tokens, the job queue, the import ledger, settings.
    """
    CREATE TABLE athletes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        scopes TEXT NOT NULL DEFAULT '',
        access_token TEXT,
        refresh_token TEXT,
        expires_at INTEGER NOT NULL DEFAULT 0,
        connected_at REAL NOT NULL,
        token_status TEXT NOT NULL DEFAULT 'ok',
        last_sync_at INTEGER
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        athlete_id INTEGER,
        object_id INTEGER,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'waiting',
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        lease_until REAL,
        lease_owner INTEGER,
        last_error TEXT,
        payload TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX jobs_open_key ON jobs(key) WHERE state = 'waiting';
    CREATE INDEX jobs_next ON jobs(state, priority, not_before, id);
    CREATE TABLE ledger (
        activity_id INTEGER PRIMARY KEY,
        athlete_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        level TEXT NOT NULL DEFAULT 'summary',
        name TEXT,
        sport_type TEXT,
        start_date TEXT,
        distance REAL,
        summary_hash TEXT,
        imported_hash TEXT,
        item_hash TEXT,
        gpx_file TEXT,
        gpx_hash TEXT,
        original_file TEXT,
        strava_updated TEXT,
        last_error TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: where an imported activity's detail came from (api, archive, both).
    """
    ALTER TABLE ledger ADD COLUMN source TEXT;
    """,
    # 3: what a job fetched from Strava, kept while its write waits to retry.
    """
    CREATE TABLE job_data (
        job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        data BLOB NOT NULL,
        kept_at REAL NOT NULL
    );
    """,
]


class Store:
    """Opens the local database and hands out per-thread connections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the data directory {path.parent}: {exc.strerror}. "
                "Set SERVICE_DATA_DIR to a writable directory."
            ) from None
        self.migrate()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database lock at once."""
        conn = self.db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version reached."""
        with self.transaction() as conn:
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A value from the key-value table."""
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def put(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a key-value entry."""
        if value is None:
            self.db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return
        self.db.execute(
            "INSERT INTO kv(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction; split and run one by one.
    return [part.strip() for part in script.split(";") if part.strip()]
