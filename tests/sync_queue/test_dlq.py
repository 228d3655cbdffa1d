"""``DeadLetterQueue``: PlexSync's file, read-only, on real SQLite files made by PlexSync's data factory."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from plexsync_recovery_plugin.dev.plexsync_data import PLEXSYNC_DLQ_INDEXES, PlexSyncData, Stored
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqUnavailable
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_END, WINDOW_START

S = int(WINDOW_START)


def _job(scene_id: int) -> dict:
    return make_job(scene_id, "metadata", {})


def _fill(plexsync: PlexSyncData) -> list[int]:
    """Five entries on two days, three types, in text and numeric forms."""
    return plexsync.add_dead_letters([
        {"job": _job(1), "failed_at": S + 10},
        {"job": _job(2), "failed_at": S + 20, "error_type": "PlexAuthError"},
        {"job": _job(3), "failed_at": Stored(S + 30.5)},  # a Unix number: dated as such, not as a Julian day
        {"job": _job(4), "failed_at": "2026-02-16T08:00:00Z", "error_type": "PlexNotFound"},
        {"job": _job(5), "failed_at": Stored(None)},
    ])


def _listing(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(directory.iterdir())}


def test_factory_writes_plexsyncs_schema_and_only_its_indexes(plexsync_dir):
    conn = sqlite3.connect(plexsync_dir.create_dlq())
    try:
        columns = [(row[1], row[2]) for row in conn.execute("PRAGMA table_info(dead_letters)")]
        indexes = {name: [row[2] for row in conn.execute(f"PRAGMA index_info({name})")]
                   for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert columns == [
        ("id", "INTEGER"), ("job_id", "INTEGER"), ("scene_id", "INTEGER"), ("job_data", "BLOB"),
        ("error_type", "TEXT"), ("error_message", "TEXT"), ("stack_trace", "TEXT"), ("retry_count", "INTEGER"),
        ("failed_at", "TIMESTAMP"),
    ]
    assert indexes == {"idx_failed_at": ["failed_at"], "idx_scene_id": ["scene_id"]}
    assert tuple(indexes) == PLEXSYNC_DLQ_INDEXES


def test_factory_default_failed_at_is_current_timestamp_text(plexsync_dir):
    entry_id = plexsync_dir.add_dead_letter(_job(1))  # as PlexSync: the column default
    conn = sqlite3.connect(plexsync_dir.dlq_path)
    try:
        stored = conn.execute("SELECT failed_at, typeof(failed_at) FROM dead_letters WHERE id = ?", (entry_id,)).fetchone()
    finally:
        conn.close()
    assert stored[1] == "text" and len(stored[0]) == 19 and stored[0][10] == " "


def test_counts_by_type_by_day_and_in_total(plexsync_dir, dlq):
    _fill(plexsync_dir)
    assert dlq.get_count() == 5
    assert dlq.get_error_summary() == {"PlexAuthError": 1, "PlexNotFound": 1, "PlexServerDown": 3}
    assert dlq.counts_by_day() == [(None, 1), ("2026-02-15", 3), ("2026-02-16", 1)]
    assert dlq.counts_by_day(["PlexServerDown"]) == [(None, 1), ("2026-02-15", 2)]


def test_window_is_the_owners_method(plexsync_dir, dlq):
    ids = _fill(plexsync_dir)
    window = dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown", "PlexAuthError"])
    assert [entry["id"] for entry in window] == ids[:3]
    assert len(window) == 3


def test_reads_change_no_byte_and_create_no_file(plexsync_dir, dlq, data_dir):
    _fill(plexsync_dir)
    before = _listing(data_dir)
    dlq.get_count(), dlq.get_error_summary(), dlq.counts_by_day(["PlexServerDown"])
    window = dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown"], page_size=1)
    assert len(list(window)) == len(window) == 2
    window.query_plan()
    assert _listing(data_dir) == before  # same files (no -journal, -wal, -shm), same bytes, same mtimes


def test_the_connection_cannot_write(plexsync_dir, dlq):
    _fill(plexsync_dir)
    with dlq.reader() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("CREATE INDEX idx_extra ON dead_letters(error_type)")


def test_a_read_only_file_in_a_read_only_directory_still_answers(plexsync_dir, data_dir):
    ids = _fill(plexsync_dir)
    before = _listing(data_dir)
    os.chmod(plexsync_dir.dlq_path, 0o444)
    os.chmod(data_dir, 0o555)
    try:
        dlq = DeadLetterQueue(data_dir)
        assert dlq.get_count() == 5
        assert dlq.counts_by_day(["PlexAuthError"]) == [("2026-02-15", 1)]
        assert [entry["id"] for entry in dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown"])] == [ids[0], ids[2]]
    finally:
        os.chmod(data_dir, 0o755)
        os.chmod(plexsync_dir.dlq_path, 0o644)
    assert _listing(data_dir) == before


def test_a_missing_dlq_raises_naming_the_file_and_creates_nothing(data_dir):
    dlq = DeadLetterQueue(data_dir)  # constructing touches nothing
    for read in (dlq.get_count, dlq.get_error_summary, dlq.counts_by_day,
                 lambda: len(dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown"])),
                 lambda: list(dlq.window(WINDOW_START, WINDOW_END, ["PlexServerDown"]))):
        with pytest.raises(DlqUnavailable, match="the file is missing") as raised:
            read()
        assert str(data_dir / "dlq.db") in str(raised.value)
    assert list(data_dir.iterdir()) == []


def test_a_dlq_without_plexsyncs_table_is_unavailable(data_dir):
    sqlite3.connect(data_dir / "dlq.db").close()
    with pytest.raises(DlqUnavailable, match="no such table: dead_letters"):
        DeadLetterQueue(data_dir).get_count()
