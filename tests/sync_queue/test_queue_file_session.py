"""A run's session on the queue file: one connection for its chunks, no lock held between them, none kept after an error."""

from __future__ import annotations

import pickle
import sqlite3
import pytest

from plexsync_recovery_plugin.sync_queue.ledger import LedgerRecord
from plexsync_recovery_plugin.sync_queue.operations import make_job
from plexsync_recovery_plugin.sync_queue.queue_file import QueueFile, QueueFileError
from plexsync_recovery_plugin.sync_queue.staged_jobs import StagedJob


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


def test_a_session_leaves_its_pages_copied_and_its_wal_synced(queue, monkeypatch) -> None:
    """After each chunk the session's pages are copied back (not left for PlexSync's next commit); at its end the WAL is synced."""
    from plexsync_recovery_plugin.sync_queue import queue_session

    synced: list[int] = []
    real_fsync = queue_session.os.fsync
    monkeypatch.setattr(queue_session.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    owner = QueueFile(queue.path)
    snapshot = owner.snapshot(None)
    plexsync = sqlite3.connect(owner.db_path)  # PlexSync keeps the file open: the WAL stays
    try:
        with owner.session():
            for scene_id in (1, 2, 3):
                owner.write_chunk([_staged(scene_id)], [], snapshot, "run")
                owner.checkpoint()
                busy, frames, copied = plexsync.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                assert frames == copied  # nothing left for PlexSync's commits to copy
            session_conn = owner._session.connection()
            assert session_conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: commits skip the disk ...
            assert synced == []
        assert len(synced) == 1  # ... the WAL was synced once, as the session ended
        with owner.session():
            owner.ledger_records([(1, (1, "2026-02-15 19:00:00"))])
        assert len(synced) == 1  # a session that only read syncs nothing
    finally:
        plexsync.close()
