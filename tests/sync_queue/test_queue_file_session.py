"""A run's session on the queue file: one connection for its chunks, no lock held between them, none kept after an error."""

from __future__ import annotations

import gc
import pickle
import sqlite3
import threading
import time

import pytest

from plexsync_recovery_plugin.sync_queue import operations as ledger
from plexsync_recovery_plugin.sync_queue.operations import LedgerRecord, QueueFile, QueueFileError, StagedJob, make_job


def _staged(scene_id: int) -> StagedJob:
    job = make_job(scene_id, "metadata", {})
    return StagedJob((scene_id, "2026-02-15 19:00:00"), 0.0, scene_id, job["job_id"], pickle.dumps(job))


def _count_connects(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each connection ``QueueFile`` opens (True when it may create the file)."""
    opened: list[bool] = []
    real = QueueFile._connect

    def counting(self: QueueFile, *, create: bool = False) -> sqlite3.Connection:
        opened.append(create)
        return real(self, create=create)

    monkeypatch.setattr(QueueFile, "_connect", counting)
    return opened


def test_a_session_shares_one_connection_and_never_holds_the_queue_between_chunks(queue, monkeypatch) -> None:
    owner = QueueFile(queue.path)
    snapshot = owner.snapshot(None)
    opened = _count_connects(monkeypatch)
    with owner.session():
        for scene_id in (1, 2, 3):
            owner.ledger_records([(scene_id, (scene_id, "2026-02-15 19:00:00"))])
            owner.write_chunk([_staged(scene_id)], [], snapshot, "run")
            other = sqlite3.connect(owner.db_path, timeout=0)  # PlexSync's worker between two chunks: no wait
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
        assert len(opened) == 1
    records = owner.ledger_records([(scene_id, (scene_id, "2026-02-15 19:00:00")) for scene_id in (1, 2, 3)])
    assert sorted(record.scene_id for record in records.values()) == [1, 2, 3]
    assert len(opened) == 2  # after the session, a call opens its own again


def test_after_a_failed_write_the_session_opens_a_new_connection(queue, monkeypatch) -> None:
    owner = QueueFile(queue.path, timeout=0.05)
    snapshot = owner.snapshot(None)
    opened = _count_connects(monkeypatch)
    with owner.session():
        owner.write_chunk([_staged(1)], [], snapshot, "run")
        blocker = sqlite3.connect(owner.db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # someone holds the write lock past our timeout
        try:
            with pytest.raises(QueueFileError, match="locked"):
                owner.write_chunk([_staged(2)], [], snapshot, "run")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        owner.write_chunk([_staged(3)], [], snapshot, "run")
    assert len(opened) == 2  # the failed connection was dropped, not reused
    assert isinstance(owner.ledger_records([(3, (3, "2026-02-15 19:00:00"))])[(3, "2026-02-15 19:00:00")], LedgerRecord)
    assert owner.ledger_records([(2, (2, "2026-02-15 19:00:00"))]) == {}  # nothing of the failed chunk


def _rows_in_main_file(owner: QueueFile) -> int:
    """Queue rows in the database file itself, the WAL ignored: what a checkpoint has copied back."""
    conn = sqlite3.connect(f"file:{owner.db_path}?immutable=1", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {owner.table}").fetchone()[0])
    finally:
        conn.close()


def test_a_session_copies_its_pages_back_within_the_budget_and_syncs_its_wal_once(queue, monkeypatch) -> None:
    """Copies come every few chunks, each finding at most ``CHECKPOINT_FRAMES`` in the WAL; the end copies the rest and syncs once."""
    from plexsync_recovery_plugin.sync_queue import operations as queue_session

    monkeypatch.setattr(queue_session, "CHECKPOINT_FRAMES", 12)  # a few one-job chunks' worth
    synced: list[int] = []
    real_fsync = queue_session.os.fsync
    monkeypatch.setattr(queue_session.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    copies: list[int] = []
    threads: list[str] = []
    real_copy = queue_session.QueueSession._copy_back
    monkeypatch.setattr(queue_session.QueueSession, "_copy_back",
                        lambda self, conn: threads.append(threading.current_thread().name)
                        or copies.append(real_copy(self, conn)) or copies[-1])
    owner = QueueFile(queue.path)
    snapshot = owner.snapshot(None)
    plexsync = sqlite3.connect(owner.db_path)  # PlexSync keeps the file open: the WAL stays
    plexsync.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the queue as PlexSync left it, all in the file
    before = _rows_in_main_file(owner)
    try:
        with owner.session():
            for scene_id in range(1, 21):
                owner.write_chunk([_staged(scene_id)], [], snapshot, "run")
                owner.checkpoint()
            session_conn = owner._session.connection()
            assert session_conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: commits skip the disk ...
            assert synced == []
            assert _rows_in_main_file(owner) < before + 20  # the last chunks wait in the WAL for the next copy
        assert len(synced) == 1  # ... the WAL was synced once, as the session ended
        assert _rows_in_main_file(owner) == before + 20  # and the rest was copied: none left for PlexSync's commits
        with owner.session():
            owner.ledger_records([(1, (1, "2026-02-15 19:00:00"))])
        assert len(synced) == 1  # a session that only read syncs nothing
    finally:
        plexsync.close()
    assert 2 < len(copies) < 20  # every few chunks, not after each one
    assert max(copies[1:-1]) <= 12  # the first copy learns a chunk's size; the end copies what is left
    # Between chunks the copies ran beside the run, on a thread of their own; the last one as the session ended.
    assert all(name.startswith("plexsync-recovery-checkpoint") for name in threads[:-1])
    assert threads[-1] == threading.current_thread().name


def test_the_lock_time_counts_a_wait_for_plexsyncs_lock_and_no_collection(queue, monkeypatch) -> None:
    """``last_lock_seconds`` is what the budget learns from: asking for the lock to committing, nothing around it."""
    owner = QueueFile(queue.path)
    snapshot = owner.snapshot(None)
    owner.write_chunk([_staged(1)], [], snapshot, "run")  # the ledger exists from here on

    # PlexSync holds its write lock for 0.3 s: the wait counts, the hold after it is short.
    plexsync = sqlite3.connect(owner.db_path, isolation_level=None, check_same_thread=False)
    plexsync.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, plexsync.execute, ("COMMIT",))
    timer.start()
    try:
        owner.write_chunk([_staged(2)], [], snapshot, "run")
    finally:
        timer.join()
        plexsync.close()
    waited, held = owner.last_lock_seconds
    assert waited >= 0.25 and held < 0.25

    # A collection that falls due while the lock is held runs after the commit: in the call, not on the lock.
    armed: list[bool] = []
    collected: list[float] = []
    write_records = ledger.write_records

    def arming(*args: object) -> None:
        armed.append(True)  # inside the transaction: from here every allocation makes a collection due
        write_records(*args)  # type: ignore[arg-type]

    def slow_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and armed and not collected:
            collected.append(time.perf_counter())
            time.sleep(0.3)

    monkeypatch.setattr(ledger, "write_records", arming)

    gc.callbacks.append(slow_collection)
    thresholds = gc.get_threshold()
    gc.set_threshold(1)
    try:
        began = time.perf_counter()
        owner.write_chunk([_staged(3)], [], snapshot, "run")
        took = time.perf_counter() - began
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(slow_collection)
    assert collected and took >= 0.3  # the slow collection ran within the call
    assert sum(owner.last_lock_seconds) < 0.25


def _staged_entry(scene_id: int, dlq_id: int) -> StagedJob:
    job = make_job(scene_id, "metadata", {})
    return StagedJob((dlq_id, "2026-02-15 19:00:00"), 0.0, scene_id, job["job_id"], pickle.dumps(job))


@pytest.mark.parametrize("order", ["by scene", "any order"])
def test_a_later_chunk_points_at_the_scenes_job_of_this_run_and_asks_only_about_scenes_it_may_have(
    queue, monkeypatch, order
) -> None:
    """The ledger is asked about a chunk's scenes only up to the highest scene this run queued: one boundary
    scene a chunk when the window is read by scene, every scene otherwise; the records are the same either way."""
    asked: list[list[int]] = []
    real = ledger.run_jobs
    monkeypatch.setattr(ledger, "run_jobs", lambda conn, run_id, scenes: asked.append(sorted(scenes)) or real(conn, run_id, scenes))
    owner = QueueFile(queue.path)
    snapshot = owner.snapshot(None)
    first, second = ([1, 2, 3], [3, 4, 5]) if order == "by scene" else ([5, 2, 3], [3, 1, 4])
    with owner.session():
        owner.write_chunk([_staged_entry(scene, 100 + scene) for scene in first], [], snapshot, "run")
        reasons = owner.write_chunk([_staged_entry(scene, 200 + scene) for scene in second], [((300, "x"), second[0])],
                                    snapshot, "run")
    assert reasons[0] == f"scene {second[0]} is queued by an earlier entry of this run"
    assert reasons[1:] == [None, None]
    records = {record["dlq_id"]: record for record in owner.all_ledger_records()}
    assert records[300]["job_id"] == records[103]["job_id"] == records[203]["job_id"]  # scene 3's one job of the run
    assert [scenes for scenes in asked if scenes] == ([[3, 3]] if order == "by scene" else [[1, 3, 3, 4]])
