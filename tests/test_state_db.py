"""The plugin's own ``recovery_state.db``: one owner, one versioned schema, never followed through a link.

A link planted in the data directory (to a file outside it, or dangling) is refused with a
message naming it, and no file appears outside the data directory, whichever door is used.
A file older versions wrote is brought up to date once and keeps its rows; it is checked once
per process.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from plexsync_recovery_plugin import state as state_db
from plexsync_recovery_plugin.outages import SOURCE_PLEXSYNC, SOURCE_WATCH
from plexsync_recovery_plugin.state import (
    SCHEMA_VERSION,
    STATE_FILE_NAME,
    PendingWindows,
    connect_state_db,
    read_state_rows,
)
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the data directory, where nothing may appear."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_dangling_link_is_refused_and_creates_nothing(data_dir, outside):
    (data_dir / STATE_FILE_NAME).symlink_to(outside / "planted.db")
    with pytest.raises(sqlite3.OperationalError, match="symbolic link"):
        PendingWindows(data_dir).add(WINDOW_START, WINDOW_END)
    assert _files(outside) == {}
    assert (data_dir / STATE_FILE_NAME).is_symlink()  # left as found: the user decides


def test_a_link_to_a_file_outside_is_refused_and_the_file_left_as_it_was(data_dir, outside):
    target = outside / "victim.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE kept (x)")
    conn.commit()
    conn.close()
    before = _files(outside)
    (data_dir / STATE_FILE_NAME).symlink_to(target)
    with pytest.raises(sqlite3.OperationalError, match=str(data_dir / STATE_FILE_NAME)):
        connect_state_db(data_dir)
    with pytest.raises(sqlite3.OperationalError, match="symbolic link"):
        read_state_rows(data_dir, "SELECT name FROM sqlite_master")
    assert _files(outside) == before


@pytest.mark.parametrize("suffix", ["-journal", "-wal"])
def test_a_linked_journal_is_refused(data_dir, outside, suffix):
    connect_state_db(data_dir).close()
    (data_dir / f"{STATE_FILE_NAME}{suffix}").symlink_to(outside / "journal")
    with pytest.raises(sqlite3.OperationalError, match="symbolic link"):
        conn = connect_state_db(data_dir)
        conn.execute("INSERT INTO pending_windows (start, end) VALUES (1, 2)")
        conn.commit()
    assert _files(outside) == {}


def test_a_recover_process_refuses_the_link(data_dir, outside, add_entry, cli_env_for_state):
    (data_dir / "queue").mkdir()
    add_entry(1, failed_at=WINDOW_START + 5)
    (data_dir / STATE_FILE_NAME).symlink_to(outside / "planted.db")
    with PlexTestServer(token="state-token") as plex, StashTestServer(scenes=[1]) as stash:
        proc = subprocess.run(
            [sys.executable, "-m", "plexsync_recovery_plugin", "recover", "--data-dir", str(data_dir),
             "--start", str(WINDOW_START), "--end", str(WINDOW_END), "--plex-url", plex.url,
             "--plex-token", plex.token, "--stash-url", stash.url],
            env=cli_env_for_state, cwd=REPO, capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("plexsync-recovery: error:")]
    assert errors and all("symbolic link" in line for line in errors), proc.stderr
    assert _files(outside) == {}


@pytest.fixture
def cli_env_for_state() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PLEX", "STASH"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _old_state_file(data_dir: Path) -> None:
    """A state file as the versions before ``user_version`` left it: tables made one by one, handled windows
    in ``handled_outages``, the daemon's outages marked ``announced_at``."""
    conn = sqlite3.connect(data_dir / STATE_FILE_NAME)
    conn.executescript(
        """
        CREATE TABLE pending_windows (id INTEGER PRIMARY KEY AUTOINCREMENT, start REAL NOT NULL, end REAL NOT NULL);
        CREATE TABLE detected_outages (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, ended_at REAL,
            dated_from TEXT NOT NULL, jobs_affected INTEGER NOT NULL DEFAULT 0, announced_at REAL);
        CREATE TABLE handled_outages (started_at REAL PRIMARY KEY, ended_at REAL NOT NULL, handled_at REAL NOT NULL);
        INSERT INTO pending_windows (start, end) VALUES (100, 200);
        INSERT INTO handled_outages VALUES (1000, 1100, 1200);
        INSERT INTO detected_outages (started_at, ended_at, dated_from, announced_at) VALUES (2000, 2100, 'x', 2200);
        INSERT INTO detected_outages (started_at, ended_at, dated_from, announced_at) VALUES (3100, 3000, 'x', 3200);
        """
    )
    conn.commit()
    conn.close()


def test_an_older_state_file_is_brought_up_to_date_once_and_keeps_its_rows(data_dir):
    _old_state_file(data_dir)
    connect_state_db(data_dir).close()
    rows = dict(
        tables=sorted(row[0] for row in read_state_rows(data_dir, "SELECT name FROM sqlite_master WHERE type='table'")
                      if not str(row[0]).startswith("sqlite_")),
        version=read_state_rows(data_dir, "PRAGMA user_version")[0][0],
        pending=read_state_rows(data_dir, "SELECT start, end FROM pending_windows"),
        handled=sorted(read_state_rows(data_dir, "SELECT source, started_at, ended_at FROM outage_handled")),
        announced=read_state_rows(data_dir, "SELECT COUNT(*) FROM detected_outages WHERE announced_at IS NOT NULL"),
    )
    assert rows == {
        "tables": ["detected_outages", "follower_meta", "outage_handled", "pending_windows", "stash_hook_marker"],
        "version": SCHEMA_VERSION,
        "pending": [(100.0, 200.0)],
        # the window PlexSync's outage was handled in, and the daemon's announced outage; not the one whose
        # readings are out of order (its recovery failed then: it is recovered now)
        "handled": [(SOURCE_PLEXSYNC, 1000.0, 1100.0), (SOURCE_WATCH, 2000.0, 2100.0)],
        "announced": [(0,)],
    }


def test_a_state_file_newer_than_the_plugin_is_refused_with_its_version(data_dir):
    conn = sqlite3.connect(data_dir / STATE_FILE_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.OperationalError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        connect_state_db(data_dir)
    assert sorted(path.name for path in data_dir.iterdir()) == [STATE_FILE_NAME]  # left in place, not set aside


def test_the_file_is_checked_once_per_process(data_dir, monkeypatch):
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(state_db.sqlite3, "connect", traced)
    for _ in range(3):
        PendingWindows(data_dir).windows()
        PendingWindows(data_dir).add(WINDOW_START, WINDOW_END)
    assert sum("quick_check" in statement for statement in statements) == 1
    assert sum(statement.strip().startswith("CREATE TABLE") for statement in statements) == 5  # the schema, once
