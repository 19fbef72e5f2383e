"""The local database: upgrades from every earlier schema, and crashes mid-write.

An installed service meets a newer release with the database an older one
left behind; start-up must bring it up to date without losing a row. And a
service killed inside a transaction (power cut, OOM killer, `kill -9`) must
leave a database that the next start opens as if the write never began.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from directus_strava.store import MIGRATIONS, Store, _statements

LATEST = len(MIGRATIONS)


def _database_at(path: Path, version: int) -> None:
    """A database as a release with only the first `version` migrations left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        conn.execute("BEGIN")
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    if version >= 1:
        _fill(conn)
    conn.close()


def _fill(conn: sqlite3.Connection) -> None:
    """Rows of every table of the first schema, as a running service writes them."""
    conn.execute(
        "INSERT INTO athletes (id, name, scopes, access_token, refresh_token, "
        "expires_at, connected_at) VALUES (7, 'Ada', 'read,activity:read_all', "
        "'sealed-access', 'sealed-refresh', 1700000000, 1690000000.5)"
    )
    conn.execute(
        "INSERT INTO jobs (kind, key, athlete_id, object_id, priority, payload, "
        "created_at, updated_at) VALUES ('import', 'import:7:42', 7, 42, 20, "
        '\'{"why": "webhook"}\', 1.0, 1.0)'
    )
    conn.execute(
        "INSERT INTO ledger (activity_id, athlete_id, state, level, name, "
        "start_date, distance, summary_hash, imported_hash, gpx_file, updated_at) "
        "VALUES (42, 7, 'imported', 'detail', 'Morning Ride', "
        "'2024-05-01T06:00:00Z', 31415.9, 'h1', 'h1', 'file-uuid', 2.0)"
    )
    conn.execute("INSERT INTO kv (key, value) VALUES ('webhook_subscription_id', '9')")


def _kept(store: Store) -> None:
    db = store.db
    athlete = db.execute("SELECT * FROM athletes WHERE id = 7").fetchone()
    assert (athlete["name"], athlete["refresh_token"]) == ("Ada", "sealed-refresh")
    assert athlete["expires_at"] == 1700000000
    job = db.execute("SELECT * FROM jobs WHERE key = 'import:7:42'").fetchone()
    assert (job["state"], job["payload"]) == ("waiting", '{"why": "webhook"}')
    row = db.execute("SELECT * FROM ledger WHERE activity_id = 42").fetchone()
    assert (row["name"], row["distance"], row["gpx_file"]) == (
        "Morning Ride",
        31415.9,
        "file-uuid",
    )
    assert store.get("webhook_subscription_id") == "9"


def _version(store: Store) -> int:
    return int(store.db.execute("PRAGMA user_version").fetchone()[0])


@pytest.mark.parametrize("start", range(LATEST))
def test_start_up_upgrades_every_earlier_schema(tmp_path: Path, start: int) -> None:
    path = tmp_path / "service.sqlite3"
    _database_at(path, start)
    store = Store(path)
    assert _version(store) == LATEST
    if start >= 1:
        _kept(store)
    # The upgraded database can take what the newest code writes.
    with store.transaction() as db:
        db.execute(
            "INSERT INTO ledger (activity_id, athlete_id, state, updated_at) "
            "VALUES (43, 7, 'listed', 3.0)"
        )
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    # The case every upgrade meets: the database one migration behind.
    path = tmp_path / "service.sqlite3"
    _database_at(path, LATEST - 1 if LATEST > 1 else 1)
    before = _columns(path)
    store = Store(path)
    _kept(store)
    after = {row[1] for row in store.db.execute("PRAGMA table_info(ledger)")}
    assert before <= after
    store.close()


def test_opening_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "service.sqlite3"
    _database_at(path, LATEST)
    first = Store(path)
    first.close()
    again = Store(path)
    assert _version(again) == LATEST
    _kept(again)
    again.close()


def _columns(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    finally:
        conn.close()


# A newer release's migration: a table and a column, cut short in the tests.
NEXT = "CREATE TABLE later (id INTEGER PRIMARY KEY); ALTER TABLE ledger ADD COLUMN x"

# A child that opens the store, writes inside a transaction, says so, and waits
# to be killed there; argv: database path, then "write" or "migrate".
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from directus_strava import store as store_module

    path, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "migrate":
        store_module.MIGRATIONS.append(sys.argv[3])
        split = store_module._statements

        def slowly(script):
            for part in split(script):
                yield part
                if script == sys.argv[3]:
                    print("inside", flush=True)
                    time.sleep(60)

        store_module._statements = slowly
        store_module.Store(path)
    store = store_module.Store(path)
    db = store.db
    db.execute("BEGIN IMMEDIATE")
    for number in range(1000, 1500):
        db.execute(
            "INSERT INTO ledger (activity_id, athlete_id, state, updated_at) "
            "VALUES (?, 7, 'listed', 1.0)",
            (number,),
        )
    db.execute("DELETE FROM athletes")
    print("inside", flush=True)
    time.sleep(60)
    """
)


def _kill_inside(path: Path, mode: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, NEXT],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    started = time.monotonic()
    line = child.stdout.readline()
    assert line.strip() == "inside", f"child said {line!r}"
    assert time.monotonic() - started < 30
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    child.stdout.close()


def test_a_process_killed_mid_write_leaves_a_clean_database(tmp_path: Path) -> None:
    path = tmp_path / "service.sqlite3"
    _database_at(path, LATEST)
    _kill_inside(path, "write")
    store = Store(path)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _kept(store)
    assert store.db.execute("SELECT count(*) FROM ledger").fetchone()[0] == 1
    # The lock died with the process: writing works at once.
    with store.transaction() as db:
        db.execute("UPDATE athletes SET name = 'Ada L.' WHERE id = 7")
    store.close()


def test_a_process_killed_mid_upgrade_upgrades_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "service.sqlite3"
    _database_at(path, LATEST)
    _kill_inside(path, "migrate")
    # Nothing of the cut-short upgrade stayed: same version, no new table.
    store = Store(path)
    assert _version(store) == LATEST
    assert "later" not in _tables(store)
    store.close()
    # The same release started again finishes the upgrade, data intact.
    monkeypatch.setattr("directus_strava.store.MIGRATIONS", [*MIGRATIONS, NEXT])
    store = Store(path)
    assert _version(store) == LATEST + 1
    assert "later" in _tables(store)
    _kept(store)
    store.close()


def _tables(store: Store) -> set[str]:
    rows = store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}
