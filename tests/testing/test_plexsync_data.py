"""``dev.plexsync_data``: PlexSync's files as PlexSync writes them, read back with the plugin's own readers."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys

import pytest

from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData, Stored, plexsync_timestamp
from plexsync_recovery_plugin.sync_queue.operations import get_queued_scene_ids, make_job
from plexsync_recovery_plugin.worker.outage_history import OutageHistory
from tests.conftest import WINDOW_START, drain


def test_importing_it_loads_no_test_server():
    code = ("import sys, plexsync_recovery_plugin.dev.plexsync_data; "
            "print(sorted(m for m in sys.modules if m.endswith(('plex_server', 'stash_server', 'graphql'))))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_dead_letters_hold_the_pickled_job_and_each_failed_at_as_asked(plexsync_dir):
    job = make_job(7, "metadata", {"title": "T"})
    ids = plexsync_dir.add_dead_letters([
        {"job": job, "failed_at": WINDOW_START + 0.9},  # Unix seconds: PlexSync's whole-second text
        {"job": job, "failed_at": "2026-02-15T19:00:00.5Z"},  # text: as given
        {"job": job, "failed_at": Stored(WINDOW_START + 0.5)},  # any value: as given
        {"job": job, "error_type": "PlexAuthError", "error_message": "401", "retry_count": 5},
    ])
    conn = sqlite3.connect(plexsync_dir.dlq_path)
    try:
        rows = conn.execute("SELECT id, job_id, scene_id, job_data, error_type, error_message, retry_count,"
                            " failed_at, typeof(failed_at), stack_trace FROM dead_letters ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [row[0] for row in rows] == ids
    assert all(pickle.loads(row[3]) == job and row[1:3] == (job["job_id"], 7) for row in rows)
    assert [row[7:9] for row in rows[:3]] == [
        (plexsync_timestamp(WINDOW_START), "text"), ("2026-02-15T19:00:00.5Z", "text"), (WINDOW_START + 0.5, "real")]
    assert rows[3][4:7] == ("PlexAuthError", "401", 5)
    assert rows[3][9].startswith("Traceback") and rows[3][9].endswith("PlexAuthError: 401\n")


@pytest.mark.parametrize(("status", "still_queued"), [("pending", True), ("unack", True), ("acked", False),
                                                       ("ack_failed", False)])
def test_queue_rows_go_through_a_real_sqlite_ack_queue(plexsync_dir, data_dir, status, still_queued):
    ids = plexsync_dir.queue_jobs([make_job(3, "metadata", {}), make_job(4, "metadata", {})], status=status,
                                  timestamp=1000.5)
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    try:
        rows = conn.execute("SELECT _id, timestamp, status FROM ack_queue_default ORDER BY _id").fetchall()
    finally:
        conn.close()
    codes = {"pending": 0, "unack": 2, "acked": 5, "ack_failed": 9}
    assert rows == [(row_id, 1000.5, codes[status]) for row_id in ids]
    assert get_queued_scene_ids(data_dir / "queue") == ({3, 4} if still_queued else set())
    assert [job["scene_id"] for job in drain(data_dir)] == ([3, 4] if status == "pending" else [])


def test_a_bad_queue_status_is_named(plexsync_dir):
    with pytest.raises(ValueError, match="'done'"):
        plexsync_dir.queue_jobs([make_job(1, "metadata", {})], status="done")


def test_outage_history_is_read_back_by_the_plugins_reader(plexsync_dir, data_dir):
    plexsync_dir.write_outage_history([{"started_at": 100.0, "ended_at": 160.0, "jobs_affected": 4},
                                       {"started_at": 500.0}])
    assert OutageHistory(data_dir).get_history() == [
        {"started_at": 100.0, "ended_at": 160.0, "duration": 60.0, "jobs_affected": 4},
        {"started_at": 500.0, "ended_at": None, "duration": None, "jobs_affected": 0},
    ]


def test_plexsync_data_makes_its_directory(tmp_path):
    assert PlexSyncData(tmp_path / "new" / "dir").create_dlq().exists()
