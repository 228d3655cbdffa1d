"""The plugin's own ``recovery_state.db`` is never followed through a symbolic link.

A link planted in the data directory (to a file outside it, or dangling) is refused with a
message naming it, and no file appears outside the data directory, whichever door is used.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from plexsync_recovery_plugin.state_db import STATE_FILE_NAME, connect_state_db, read_state_rows
from plexsync_recovery_plugin.sync_queue.pending_windows import PendingWindows
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START

SCHEMA = "CREATE TABLE IF NOT EXISTS t (x INTEGER)"
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
        connect_state_db(data_dir, SCHEMA)
    with pytest.raises(sqlite3.OperationalError, match="symbolic link"):
        read_state_rows(data_dir, "SELECT name FROM sqlite_master")
    assert _files(outside) == before


@pytest.mark.parametrize("suffix", ["-journal", "-wal"])
def test_a_linked_journal_is_refused(data_dir, outside, suffix):
    connect_state_db(data_dir, SCHEMA).close()
    (data_dir / f"{STATE_FILE_NAME}{suffix}").symlink_to(outside / "journal")
    with pytest.raises(sqlite3.OperationalError, match="symbolic link"):
        conn = connect_state_db(data_dir, SCHEMA)
        conn.execute("INSERT INTO t VALUES (1)")
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
