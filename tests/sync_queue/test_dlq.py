"""``DeadLetterQueue``: PlexSync's schema and methods, on a real SQLite file."""

from __future__ import annotations

import pickle
import re
import sqlite3
import time

from plexsync_recovery_plugin.plex.exceptions import PlexAuthError, PlexServerDown
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.operations import make_job


def test_schema_is_plexsyncs(dlq):
    conn = sqlite3.connect(dlq.db_path)
    try:
        columns = [(row[1], row[2]) for row in conn.execute("PRAGMA table_info(dead_letters)")]
        indexed = {row[2] for name in ("idx_dlq_failed_at", "idx_dlq_scene_id") for row in conn.execute(f"PRAGMA index_info({name})")}
    finally:
        conn.close()
    assert columns == [
        ("id", "INTEGER"),
        ("job_id", "INTEGER"),
        ("scene_id", "INTEGER"),
        ("job_data", "BLOB"),
        ("error_type", "TEXT"),
        ("error_message", "TEXT"),
        ("stack_trace", "TEXT"),
        ("retry_count", "INTEGER"),
        ("failed_at", "TIMESTAMP"),
    ]
    assert indexed == {"failed_at", "scene_id"}


def test_add_stores_the_job_and_the_error(dlq):
    job = make_job(42, "metadata", {"title": "T"})
    try:
        raise PlexServerDown("connection refused")
    except PlexServerDown as error:
        entry_id = dlq.add(job, error, retry_count=3)
    entry = dlq.get_by_id(entry_id)
    assert entry["scene_id"] == 42
    assert entry["job_id"] == job["job_id"]
    assert entry["error_type"] == "PlexServerDown"
    assert entry["error_message"] == "connection refused"
    assert "raise PlexServerDown" in entry["stack_trace"]
    assert entry["retry_count"] == 3
    assert pickle.loads(entry["job_data"]) == job
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", entry["failed_at"])  # CURRENT_TIMESTAMP, UTC


def test_recent_count_summary_and_lookup(dlq):
    now = time.time()
    first = dlq.add(make_job(1, "metadata", {}), PlexServerDown("x"), 3, failed_at=now - 30)
    second = dlq.add(make_job(2, "metadata", {}), PlexAuthError("y"), 3, failed_at=now - 20)
    third = dlq.add(make_job(3, "metadata", {}), PlexServerDown("z"), 3, failed_at=now - 10)
    assert [entry["id"] for entry in dlq.get_recent(2)] == [third, second]
    assert dlq.get_count() == 3
    assert dlq.get_error_summary() == {"PlexAuthError": 1, "PlexServerDown": 2}
    assert dlq.get_by_id(first)["scene_id"] == 1
    assert dlq.get_by_id(999) is None


def test_retention_deletes_only_old_entries(dlq):
    now = time.time()
    dlq.add(make_job(1, "metadata", {}), PlexServerDown("old"), 3, failed_at=now - 10 * 86400)
    recent = dlq.add(make_job(2, "metadata", {}), PlexServerDown("new"), 3, failed_at=now - 86400)
    assert dlq.delete_older_than(7) == 1
    assert [entry["id"] for entry in dlq.get_recent(10)] == [recent]


def test_reopening_keeps_the_rows(data_dir, dlq):
    dlq.add(make_job(1, "metadata", {}), PlexServerDown("x"), 3)
    assert DeadLetterQueue(data_dir).get_count() == 1
