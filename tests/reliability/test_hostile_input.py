"""Hostile and broken input: each gives a clear message or a counted skip, never a traceback.

Every case fires ``outage_ended`` the way a sender does (``outage_ended.send``) and checks
what came back: a ``recovery_completed`` whose counts say what happened, or a
``recovery_failed`` whose error names the problem. No DLQ row is ever lost or changed.
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import stat
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, outage_ended
from plexsync_recovery_plugin.decode import MAX_PICKLE_BYTES
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqUnavailable, DlqWindow
from plexsync_recovery_plugin.sync_queue.dlq_recovery import get_outage_dlq_entries
from plexsync_recovery_plugin.sync_queue.operations import get_queued_scene_ids, make_job
from plexsync_recovery_plugin.worker import outage_history
from plexsync_recovery_plugin.worker.outage_history import OutageHistory
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import PlainStash, SwitchablePlex, dlq_rows, insert_dlq_rows

S = WINDOW_START


def _fire() -> None:
    outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)  # raises only if the plugin leaks an error


def _scenes(data_dir: Path) -> list[int]:
    return sorted(job["scene_id"] for job in drain(data_dir))


class RunsACommand:
    """Unpickling this would run ``touch <marker>``: a hostile job."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _job_bytes(scene_id: int = 1, **changes) -> bytes:
    job = make_job(scene_id, "metadata", {"title": "x"})
    job.update(changes)
    return pickle.dumps({key: value for key, value in job.items() if value is not ...})


# --- job_data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_data", "message"),
    [
        (b"this is not a pickle", "not a valid pickle"),
        (_job_bytes()[:-7], "not a valid pickle"),  # truncated
        (pickle.dumps([1, "metadata"]), "holds a list, not a job dict"),
        (pickle.dumps("scene 1"), "holds a str, not a job dict"),
        (_job_bytes(scene_id=...), "has no scene_id"),
        (_job_bytes(update_type=...), "has no update_type"),
        (_job_bytes(update_type=""), "update_type must be a non-empty string"),
        (_job_bytes(scene_id="1; DROP TABLE dead_letters"), "scene_id must be a positive integer"),
        (b"", "not a valid pickle"),
        (None, "job_data is empty"),
    ],
    # Named, not spelt out: a job's pickle holds its job_id and enqueued_at, which change every run.
    ids=["not-a-pickle", "truncated", "a-list", "a-str", "no-scene-id", "no-update-type", "empty-update-type",
         "sql-in-scene-id", "empty-bytes", "null"],
)
@pytest.mark.parametrize("column_scene_id", [1, None])
def test_broken_job_data_is_counted_failed(
    plugin, data_dir, completed, failed, caplog, job_data, message, column_scene_id
):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": column_scene_id, "job_data": job_data, "failed_at": S + 1}])
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": 2, "failed_at": S + 2}])
    before = dlq_rows(data_dir / "dlq.db")
    _fire()
    assert failed.calls == []
    result = completed.calls[0]["result"]
    assert (result.total_dlq_entries, result.failed, result.recovered) == (2, 1, 1)
    assert _scenes(data_dir) == [2]
    assert message in caplog.text
    assert "DLQ entry 1 is corrupt" in caplog.text
    assert dlq_rows(data_dir / "dlq.db") == before


@pytest.mark.parametrize("column_scene_id", [7, None])
def test_pickle_that_would_run_a_command_is_refused_unrun(
    plugin, data_dir, completed, caplog, tmp_path, column_scene_id
):
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({"scene_id": 7, "update_type": "metadata", "data": RunsACommand(marker)})
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": column_scene_id, "job_data": hostile, "failed_at": S + 1}])
    _fire()
    assert not marker.exists()
    result = completed.calls[0]["result"]
    assert (result.failed, result.recovered) == (1, 0)
    assert "posix.system" in caplog.text or "os.system" in caplog.text
    assert drain(data_dir) == []


def test_hostile_row_in_the_queue_is_never_run(queue, data_dir, tmp_path):
    """Gate 2 reads the live queue's rows too: a tampered row there must not run either."""
    marker = tmp_path / "pwned"
    queue.put({"scene_id": 3, "update_type": "metadata"})
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:
        conn.execute(
            "INSERT INTO ack_queue_default (data, timestamp, status) VALUES (?, ?, 1)",
            (pickle.dumps(RunsACommand(marker)), time.time()),
        )
    conn.close()
    assert get_queued_scene_ids(queue.path) == {3}
    assert not marker.exists()


def test_oversized_blob_is_never_loaded_and_is_counted_failed(plugin, data_dir, completed, caplog):
    size = 50 * 1024 * 1024
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": 2, "failed_at": S + 2}])
    conn = sqlite3.connect(data_dir / "dlq.db")
    with conn:  # zeroblob: the 50 MB never exist in this process either
        conn.execute(
            "INSERT INTO dead_letters (job_id, scene_id, job_data, error_type, failed_at)"
            " VALUES (1, 1, zeroblob(?), 'PlexServerDown', ?)",
            (size, "2026-02-15 19:00:01"),
        )
    conn.close()

    tracemalloc.start()
    try:
        entries = list(DlqWindow(DeadLetterQueue(data_dir), WINDOW_START, WINDOW_END, ["PlexServerDown"]))
        window_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        _fire()
        recovery_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    big = next(entry for entry in entries if entry["scene_id"] == 1)
    assert (big["job_data"], big["job_data_size"]) == (None, size)
    assert window_peak < 2 * 1024 * 1024
    assert recovery_peak < MAX_PICKLE_BYTES
    result = completed.calls[0]["result"]
    assert (result.failed, result.recovered) == (1, 1)
    assert f"job_data is {size} bytes, too large" in caplog.text
    conn = sqlite3.connect(data_dir / "dlq.db")
    assert conn.execute("SELECT COUNT(*), MAX(length(job_data)) FROM dead_letters").fetchone() == (2, size)
    conn.close()


# --- the scene_id column ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "recovered", "message"),
    [
        (None, [5], None),  # NULL: the job's own scene_id is used
        ("5", [5], None),  # text that SQLite's INTEGER affinity stores as 5
        (-5, [], "DLQ column scene_id must be a positive integer, got -5"),
        (0, [], "DLQ column scene_id must be a positive integer, got 0"),
        ("five", [], "DLQ column scene_id must be a positive integer, got 'five'"),
        (2.5, [], "DLQ column scene_id must be a positive integer, got 2.5"),
        (6, [], "DLQ column scene_id 6 differs from the job's scene_id 5"),
    ],
)
def test_scene_id_column(plugin, data_dir, completed, caplog, column, recovered, message):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": column, "job_data": _job_bytes(5), "failed_at": S + 1}])
    before = dlq_rows(data_dir / "dlq.db")
    _fire()
    result = completed.calls[0]["result"]
    assert result.recovered_scene_ids == recovered
    assert result.failed == (0 if recovered else 1)
    assert _scenes(data_dir) == recovered
    if message:
        assert message in caplog.text
    assert dlq_rows(data_dir / "dlq.db") == before


# --- failed_at -------------------------------------------------------------------------------


def test_null_failed_at_is_never_selected(plugin, dlq, data_dir, completed):
    conn = sqlite3.connect(data_dir / "dlq.db")
    with conn:
        conn.execute(
            "INSERT INTO dead_letters (scene_id, job_data, error_type, failed_at)"
            " VALUES (1, ?, 'PlexServerDown', NULL)",
            (_job_bytes(1),),
        )
    conn.close()
    assert get_outage_dlq_entries(dlq, 0, 253402300799, ["PlexServerDown"]) == []
    _fire()
    assert completed.calls[0]["result"].total_dlq_entries == 0


@pytest.mark.parametrize(
    ("failed_at", "inside"),
    [
        ("2026-02-15 19:00:10.500", True),
        ("2026-02-15 19:00:10.25", True),  # the bound itself, two digits
        ("2026-02-15 19:00:10.2", False),
        ("2026-02-15 19:00:10.750", True),
        ("2026-02-15 19:00:10.751", False),
        ("2026-02-15T19:00:10.5", True),  # ISO with T
        ("2026-02-15T19:00:10", False),
        ("2026-02-15 19:00:10", False),
        ("not a time", False),
        ("", False),
    ],
)
def test_failed_at_text_forms(dlq, data_dir, failed_at, inside):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": 1, "failed_at": failed_at}])
    found = get_outage_dlq_entries(dlq, S + 10.25, S + 10.75, ["PlexServerDown"])
    assert [entry["failed_at"] for entry in found] == ([failed_at] if inside else [])


def test_fractional_and_iso_times_are_recovered_through_the_plugin(plugin, data_dir, completed):
    insert_dlq_rows(
        data_dir / "dlq.db",
        [
            {"scene_id": 1, "failed_at": "2026-02-15 19:00:00.001"},
            {"scene_id": 2, "failed_at": "2026-02-15T19:10:00"},
            {"scene_id": 3, "failed_at": "2026-02-15T19:30:00.000"},  # the last instant of the window
            {"scene_id": 4, "failed_at": "2026-02-15 19:30:00.001"},  # just after it
            {"scene_id": 5, "failed_at": "2026-02-15 18:59:59.999"},  # just before it
        ],
    )
    _fire()
    assert completed.calls[0]["result"].recovered_scene_ids == [1, 2, 3]


# --- error types that look like SQL ----------------------------------------------------------


def test_error_types_holding_sql_select_nothing_and_harm_nothing(dlq, data_dir):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": n, "failed_at": S + n} for n in range(1, 4)])
    before = dlq_rows(data_dir / "dlq.db")
    hostile = ["x') OR 1=1 --", "PlexServerDown' OR '1'='1", "'; DROP TABLE dead_letters; --"]
    assert get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, hostile) == []
    assert len(DlqWindow(dlq, WINDOW_START, WINDOW_END, hostile)) == 0
    assert dlq_rows(data_dir / "dlq.db") == before
    # A row whose type is literally that text is matched as text, and only it.
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": 9, "failed_at": S + 9, "error_type": hostile[0]}])
    assert [entry["scene_id"] for entry in get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, hostile)] == [9]


# --- the DLQ file itself ---------------------------------------------------------------------


def test_dlq_file_that_is_not_sqlite(plugin, data_dir, completed, failed):
    garbage = b"PlexSync was here\x00" * 512
    (data_dir / "dlq.db").write_bytes(garbage)
    _fire()
    assert completed.calls == []
    [call] = failed.calls
    assert isinstance(call["error"], DlqUnavailable)
    assert str(call["error"]) == f"cannot read the DLQ {data_dir / 'dlq.db'}: file is not a database"
    assert (data_dir / "dlq.db").read_bytes() == garbage
    assert plugin.pending_windows() == [(WINDOW_START, WINDOW_END)]  # retried once the file is fixed


def test_missing_dlq_file_is_reported_and_not_recreated(plugin, data_dir, completed, failed):
    (data_dir / "dlq.db").unlink()
    _fire()
    [call] = failed.calls
    assert str(call["error"]) == f"cannot open the DLQ {data_dir / 'dlq.db'}: the file is missing"
    assert not (data_dir / "dlq.db").exists()


def test_dlq_without_its_table(plugin, data_dir, failed):
    (data_dir / "dlq.db").unlink()
    sqlite3.connect(data_dir / "dlq.db").close()
    _fire()
    assert "no such table: dead_letters" in str(failed.calls[0]["error"])
    assert str(data_dir / "dlq.db") in str(failed.calls[0]["error"])


def test_read_only_dlq_is_read_and_left_untouched(dlq, queue, data_dir, tmp_path, completed, failed, monkeypatch):
    """chmod 0444 on the file and 0555 on its directory; as root, chmod stops nothing, so the
    DLQ's connections are also put in ``PRAGMA query_only`` (SQLite refuses every write).

    The plugin keeps its own lock and state in a writable directory of their own, as it must
    when PlexSync's directory is read-only to it (the queue lives in a writable subdirectory).
    """
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": n, "failed_at": S + n} for n in range(1, 4)])
    before = dlq_rows(data_dir / "dlq.db")
    real_connect = DeadLetterQueue._get_connection

    def query_only(self):
        conn = real_connect(self)
        conn.execute("PRAGMA query_only = ON")
        return conn

    if os.geteuid() == 0:
        monkeypatch.setattr(DeadLetterQueue, "_get_connection", query_only)
    os.chmod(data_dir / "dlq.db", 0o444)
    dlq_dir_mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    os.chmod(data_dir, 0o555)
    try:
        probe = dlq._get_connection()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            probe.execute("DELETE FROM dead_letters")
        probe.close()
        with RecoveryPlugin(dlq, queue, PlainStash(), SwitchablePlex(), tmp_path / "plugin-state"):
            _fire()
    finally:
        os.chmod(data_dir, dlq_dir_mode)
        os.chmod(data_dir / "dlq.db", 0o644)
    assert failed.calls == []
    assert completed.calls[0]["result"].recovered_scene_ids == [1, 2, 3]
    assert dlq_rows(data_dir / "dlq.db") == before
    assert _scenes(data_dir) == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("locked_file", ["dlq.db", "queue/data.db"])
def test_file_locked_by_a_writer_for_two_seconds_is_waited_for(plugin, data_dir, completed, failed, queue, locked_file):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": n, "failed_at": S + n} for n in range(1, 4)])
    before = dlq_rows(data_dir / "dlq.db")
    holding = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(data_dir / locked_file, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holding.set()
        time.sleep(2.0)  # the scenario: another writer keeps the file for 2 s
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert holding.wait(10)
    started = time.monotonic()
    _fire()
    waited = time.monotonic() - started
    holder.join()
    assert failed.calls == []
    assert completed.calls[0]["result"].recovered_scene_ids == [1, 2, 3]
    assert waited >= 1.5  # it did wait for the writer
    assert _scenes(data_dir) == [1, 2, 3]
    assert dlq_rows(data_dir / "dlq.db") == before


# --- the outage history file -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'[{"started_at": 1771182000.0, "ended_at": 17711',  # truncated mid-write
        b"",
        b"\xff\xfe\x00\x01 binary garbage \x80\x81",
        b'{"started_at": 1}',
        b'[{"started_at": "yesterday"}]',
    ],
)
def test_broken_outage_history_is_kept_aside_and_started_fresh(data_dir, caplog, monkeypatch, content):
    # Not this test's subject: the re-reads a torn history gets (an empty one waits them all out, twice).
    monkeypatch.setattr(outage_history, "REREAD_PAUSES", (0.0,) * len(outage_history.REREAD_PAUSES))
    path = data_dir / "outage_history.json"
    path.write_bytes(content)
    history = OutageHistory(data_dir)
    with caplog.at_level(logging.WARNING):
        assert history.get_current_outage() is None
        assert history.record_outage_start(S) is not None
    [backup] = data_dir.glob("outage_history.json.corrupt-*")
    assert backup.read_bytes() == content
    assert "unreadable" in caplog.text
    assert [record["started_at"] for record in history.get_history()] == [S]


def test_history_corrupted_twice_keeps_both_copies(data_dir):
    path = data_dir / "outage_history.json"
    history = OutageHistory(data_dir)
    path.write_text("first garbage")
    history.record_outage_start(S)
    path.write_text("second garbage")
    history.record_outage_start(S + 100)
    backups = sorted(backup.read_text() for backup in data_dir.glob("outage_history.json.corrupt-*"))
    assert backups == ["first garbage", "second garbage"]


def test_broken_history_never_reaches_the_recovery(plugin, data_dir, add_entry, completed, failed):
    """A garbage history is replaced, and the next outage still recovers its window."""
    add_entry(1, failed_at=S + 10)
    (data_dir / "outage_history.json").write_bytes(b"\x00garbage")
    history = OutageHistory(data_dir)
    history.record_outage_start(S)
    history.record_outage_end(S + 60)
    assert failed.calls == []
    assert completed.calls[0]["result"].recovered_scene_ids == [1]


# --- the plugin's own state file -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_broken_state_file_is_set_aside_and_recovery_goes_on(
    plugin, data_dir, add_entry, completed, failed, caplog, damage
):
    """A broken ``recovery_state.db`` must not stop this recovery, nor every later one."""
    PendingWindows(data_dir).add(S - 5000, S - 4000)
    state = data_dir / "recovery_state.db"
    content = b"not sqlite at all " * 200 if damage == "garbage" else state.read_bytes()[:5000]
    state.write_bytes(content)
    add_entry(1)
    _fire()
    assert failed.calls == []
    assert completed.calls[-1]["result"].recovered_scene_ids == [1]
    [backup] = data_dir.glob("recovery_state.db.corrupt-*")
    assert backup.read_bytes() == content
    assert "was unreadable" in caplog.text and str(backup) in caplog.text
    assert plugin.pending_windows() == []
