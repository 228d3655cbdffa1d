"""A ``dlq.db`` in WAL mode: reading it leaves PlexSync's folder with no new file, and still sees
every row a live writer commits.

SQLite's read-only connections create ``-wal`` and ``-shm`` for a WAL database and cannot
remove them; the reader removes the ones it created once no connection has the file open.
The writer here is another process holding a real connection, as PlexSync's worker does.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from tests.conftest import WINDOW_END, WINDOW_START

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def wal_dlq(plexsync_dir, add_entry, data_dir) -> DeadLetterQueue:
    """PlexSync's DLQ with one entry, switched to WAL mode (as a user or a tool may do), no connection open."""
    add_entry(1, failed_at=WINDOW_START + 5)
    conn = sqlite3.connect(data_dir / "dlq.db")
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.close()
    assert _names(data_dir) == ["dlq.db"]
    return DeadLetterQueue(data_dir)


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("dlq.db"))


class Writer:
    """Another process with a read-write connection to ``dlq.db`` open; it inserts rows when told."""

    def __init__(self, db: Path) -> None:
        code = textwrap.dedent(f"""
            import sqlite3, sys
            conn = sqlite3.connect({str(db)!r})
            conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
            print("open", flush=True)
            for line in sys.stdin:
                if line.strip() == "add":
                    with conn:
                        conn.execute("INSERT INTO dead_letters (job_id, scene_id, job_data, error_type, error_message,"
                                     " retry_count, failed_at) VALUES (7, 2, x'80', 'PlexServerDown', 'down', 3,"
                                     " '2026-02-15 19:00:09')")
                    print("added", flush=True)
                else:
                    break
            conn.close()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "open"

    def add(self) -> None:
        self.proc.stdin.write("add\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "added"

    def close(self) -> None:
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdout.close()
        self.proc.stdin.close()


def test_reading_a_wal_dlq_leaves_no_new_file(wal_dlq, data_dir):
    assert wal_dlq.get_count() == 1
    assert [entry["scene_id"] for entry in wal_dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown"])] == [1]
    assert _names(data_dir) == ["dlq.db"]


def test_nested_readers_leave_no_new_file_once_the_last_closes(wal_dlq, data_dir):
    with wal_dlq.reader() as outer:
        assert wal_dlq.get_count() == 1  # a second reader opens and closes meanwhile
        assert outer.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 1
        assert "dlq.db-shm" in _names(data_dir)  # the outer reader still uses them
    assert _names(data_dir) == ["dlq.db"]


def test_a_cli_report_and_dry_run_leave_no_new_file(wal_dlq, data_dir, run_cli_here):
    before = (data_dir / "dlq.db").read_bytes()
    report = run_cli_here("dlq", "--data-dir", data_dir, "--start", WINDOW_START, "--end", WINDOW_END)
    assert report.returncode == 0, report.stderr
    dry = run_cli_here("recover", "--dry-run", "--data-dir", data_dir, "--start", WINDOW_START, "--end", WINDOW_END,
                       "--plex-url", "http://127.0.0.1:9")
    assert "Traceback" not in dry.stderr
    assert _names(data_dir) == ["dlq.db"] and (data_dir / "dlq.db").read_bytes() == before


def test_a_live_writer_keeps_its_files_and_every_commit_is_seen(wal_dlq, data_dir):
    writer = Writer(data_dir / "dlq.db")
    try:
        assert _names(data_dir) == ["dlq.db", "dlq.db-shm", "dlq.db-wal"]  # the writer's own
        assert wal_dlq.get_count() == 1
        writer.add()
        assert wal_dlq.get_count() == 2  # a commit still in the writer's WAL is read
        with wal_dlq.reader() as conn:
            writer.add()  # committed while a reader is open
            assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 3
        assert _names(data_dir) == ["dlq.db", "dlq.db-shm", "dlq.db-wal"]  # left to the writer
    finally:
        writer.close()
    assert _names(data_dir) == ["dlq.db"]  # the writer's last close removed them
    assert wal_dlq.get_count() == 3


def test_a_writer_that_commits_during_a_read_keeps_its_commits(wal_dlq, data_dir):
    with wal_dlq.reader() as conn:
        assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 1
        writer = Writer(data_dir / "dlq.db")
        writer.add()
        writer.close()  # cannot checkpoint while the reader is open: its commit stays in the WAL
    assert wal_dlq.get_count() == 2  # the WAL holding it was not removed
    plexsync = sqlite3.connect(data_dir / "dlq.db")  # PlexSync's next connection checkpoints it
    assert plexsync.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 2
    plexsync.close()
    assert _names(data_dir) == ["dlq.db"]


@pytest.fixture
def run_cli_here():
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PLEX", "STASH"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", *map(str, args)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    return run


def test_a_connection_of_this_process_keeps_the_files_it_uses(wal_dlq, data_dir):
    with wal_dlq.reader() as conn:
        assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 1
        here = sqlite3.connect(data_dir / "dlq.db")  # PlexSync's worker, when the plugin runs inside it
        assert here.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 1
    try:
        assert _names(data_dir) == ["dlq.db", "dlq.db-shm", "dlq.db-wal"]  # in use by ``here``
        with here:
            here.execute("DELETE FROM dead_letters WHERE id = -1")  # a write still works
    finally:
        here.close()
    assert _names(data_dir) == ["dlq.db"]
