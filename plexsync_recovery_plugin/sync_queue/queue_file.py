"""``QueueFile``: the one owner of PlexSync's queue file, ``<data_dir>/queue/data.db``.

It answers "which scenes are already covered" (live and recently acked jobs), keeps the
redrive ledger beside persist-queue's table, and writes a chunk of recovered jobs plus
their ledger records in one short transaction, deciding inside that transaction, against
every row the queue holds at that moment, whether a scene gained a job meanwhile.

Reads never create a file: ``mode=rw`` (SQLite removes its WAL files on close); no file reads as an empty queue.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, ContextManager, Sequence

from ..sqlite_uri import sqlite_uri
from . import ledger, queue_rows
from .ledger import CLAIMED, LedgerRecord
from .queue_session import QueueSession
from .queue_snapshot import ACKED, LIVE_STATUSES, QueueSnapshot
from .staged_jobs import StagedJob, chunk_records

__all__ = ["QUEUE_FILE_NAME", "QueueFile", "QueueFileError"]

logger = logging.getLogger(__name__)

QUEUE_FILE_NAME = "data.db"
#: Acked rows are read from this long before the window's start: room for a clock that stepped back.
ACKED_SCAN_MARGIN = queue_rows.ACKED_SCAN_MARGIN
_READY = 0  # persist-queue's AckStatus.inited: what put() writes
_BY_THIS_RUN = "scene {} is queued by an earlier entry of this run"
#: What a row's values, not the file, make fail: a constraint, a value SQLite cannot bind (OverflowError) ...
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
               ArithmeticError, ValueError, TypeError)


class QueueFileError(sqlite3.OperationalError):
    """The queue file could not be read or written; the message names the file and the cause."""


class QueueFile:
    """PlexSync's queue file: the live jobs, the ledger, and the batch write.

    Attributes:
        db_path: ``<queue_path>/data.db``.
        table: persist-queue's table (``ack_queue_default`` for PlexSync's queue).
    """

    def __init__(self, queue_path: str | Path, *, name: str = "default", timeout: float = 30.0) -> None:
        self.db_path = Path(queue_path) / QUEUE_FILE_NAME
        self.table = f"ack_queue_{name}"
        self.timeout = timeout
        self._session = QueueSession(lambda: self._connect(create=True), self.db_path)
        self._ledger_ready_on: sqlite3.Connection | None = None  # the session connection that made sure of the ledger
        #: The last ``write_chunk``'s time on the write lock, in seconds: ``(waited, held)``,
        #: waiting for it (PlexSync had it) and holding it (PlexSync's worker may wait that
        #: long). Neither counts the reads before the lock nor the collection after it.
        self.last_lock_seconds = (0.0, 0.0)

    def session(self) -> ContextManager[None]:
        """Let a run's per-chunk ledger reads and chunk writes share one connection (``queue_session``)."""
        return self._session.running()

    def checkpoint(self) -> None:
        """After a chunk: copy its pages into the file with no lock held (see ``queue_session``)."""
        self._session.checkpoint()

    def __repr__(self) -> str:
        return f"QueueFile({str(self.db_path)!r})"

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        try:
            if create:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                return sqlite3.connect(self.db_path, timeout=self.timeout, isolation_level=None)
            return sqlite3.connect(sqlite_uri(self.db_path, "rw"), uri=True, timeout=self.timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as error:
            raise self._error("cannot open", error) from error

    def _error(self, doing: str, error: BaseException) -> QueueFileError:
        """The error as the user needs it: what failed, on which file, and SQLite's own code for it."""
        code = getattr(error, "sqlite_errorname", None)
        return QueueFileError(f"{doing} the queue file {self.db_path}: {error}" + (f" ({code})" if code else ""))

    def _has_table(self, conn: sqlite3.Connection, table: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None

    def snapshot(self, since: float | None, *, live: bool = True, acked: bool = True) -> QueueSnapshot:
        """Scenes with a live job and acked jobs enqueued at or after ``since`` (all if None).

        Only rows that can matter are read and decoded: live rows in one pass that SQLite
        makes without unpickling anything, acked rows only from where ``since`` begins
        (found by a binary search on the row ids, which PlexSync's queue hands out in time
        order), so a million old acked rows cost about 0.1 s, not a million unpickles.
        """
        snapshot = QueueSnapshot()
        if not self.db_path.exists():
            return snapshot
        conn = self._connect()
        try:
            conn.execute("BEGIN")  # one read transaction: the rows and the high-water mark agree
            if not self._has_table(conn, self.table):
                return snapshot
            high = queue_rows.high_water(conn, self.table)
            select = f"SELECT _id, data, status, timestamp FROM {self.table} WHERE _id <= ? AND "
            if live:  # statuses 0, 1 and 2 (persist-queue's AckStatus); "< 3" is the quickest test
                snapshot.absorb(queue_rows.decoded(conn.execute(select + f"status < {max(LIVE_STATUSES) + 1}", (high,))))
            if acked:
                start = 0 if since is None else queue_rows.first_row_since(conn, self.table, since - ACKED_SCAN_MARGIN, high)
                sql = select + f"_id >= ? AND status = {ACKED} AND timestamp >= ?"
                snapshot.absorb(queue_rows.decoded(conn.execute(sql, (high, start, since or 0.0))))
            snapshot.last_row_id = high
            return snapshot
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from error
        finally:
            conn.close()

    def high_water(self) -> int:
        """The highest row id the queue table has ever given out (0 without a table)."""
        if not self.db_path.exists():
            return 0
        conn = self._connect()
        try:
            return queue_rows.high_water(conn, self.table) if self._has_table(conn, self.table) else 0
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from error
        finally:
            conn.close()

    def refresh(self, snapshot: QueueSnapshot, conn: sqlite3.Connection | None = None) -> None:
        """Take every row appended since ``snapshot.last_row_id`` into account."""
        own = conn is None
        if own:
            if not self.db_path.exists():
                return
            conn = self._connect()
        assert conn is not None
        try:
            if self._has_table(conn, self.table):
                sql = f"SELECT _id, data, status, timestamp FROM {self.table} WHERE _id > ? ORDER BY _id"
                snapshot.absorb(queue_rows.decoded(conn.execute(sql, (snapshot.last_row_id,))))
        finally:
            if own:
                conn.close()

    def ledger_records(self, entries: Sequence[tuple[int, tuple[int, str]]]) -> dict[tuple[int, str], LedgerRecord]:
        """The ledger records of those ``(scene_id, identity)`` entries that have one (read-only; creates nothing)."""
        if not entries or not self.db_path.exists():
            return {}
        conn = self._session.connection() if self._session.active else self._connect()
        failed = False
        try:
            return ledger.read_records(conn, entries)
        except sqlite3.Error as error:
            failed = True
            raise self._error("cannot read the ledger in", error) from error
        finally:
            self._session.release(conn, failed=failed)

    def all_ledger_records(self) -> list[dict[str, Any]]:
        """Every ledger record, oldest first (for audits and tests)."""
        if not self.db_path.exists():
            return []
        conn = self._connect()
        try:
            return ledger.all_records(conn)
        finally:
            conn.close()

    def claim_verdict(self, record: LedgerRecord) -> str:
        """What became of an interrupted claim: ``"queued"``, ``"absent"`` or ``"unknown"``.

        ``queued``: a job for the scene was appended after the claim. ``absent``: none was,
        and no row appended since has been deleted, so the claimed job was never written.
        ``unknown``: rows appended since were cleared, so the job may have run and gone.
        """
        if record.claim_seq is None or not self.db_path.exists():
            return "unknown"
        conn = self._connect()
        try:
            if not self._has_table(conn, self.table):
                return "unknown"
            present = 0
            rows = conn.execute(f"SELECT _id, data, status, timestamp FROM {self.table} WHERE _id > ?", (record.claim_seq,))
            for _, scene_id, status, _ in queue_rows.decoded(rows):
                present += 1
                if scene_id == record.scene_id and status != 9:
                    return "queued"
            return "absent" if queue_rows.high_water(conn, self.table) - record.claim_seq == present else "unknown"
        finally:
            conn.close()

    def write_chunk(
        self, jobs: Sequence[StagedJob], covered: Sequence[tuple[tuple[int, str], int]], snapshot: QueueSnapshot, run_id: str
    ) -> list[str | None]:
        """Write jobs and ledger records in one transaction; return each job's covering reason.

        Inside the transaction the rows appended since ``snapshot`` are read first: a job whose
        scene gained a job meanwhile (PlexSync's, or this run's as the ledger says) is not
        written, and its reason says why (None: written). ``covered`` entries are recorded
        against the scene's job of this run, if any. On error nothing is written.

        Raises:
            QueueFileError: The file could not be written (locked, read-only, full): names it and the cause.
            Exception: A row's values could not be written (nothing was; write the rows one by one).
        """
        conn = self._session.connection()
        failed, collecting = True, gc.isenabled()
        gc.disable()  # a full collection inside the transaction would hold PlexSync's worker off for it
        try:
            scenes = [job.scene_id for job in jobs] + [scene for _, scene in covered]
            ready = conn is self._ledger_ready_on  # the session made sure of the ledger already
            earlier = ledger.run_jobs(conn, run_id, scenes) if ready else {}  # only this run writes ``run_id``: no lock
            asked = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            locked = time.perf_counter()
            if not ready:
                ledger.ensure_ledger(conn)
                earlier = ledger.run_jobs(conn, run_id, scenes)
            self.refresh(snapshot, conn)
            reasons = [_BY_THIS_RUN.format(job.scene_id) if job.scene_id in earlier
                       else snapshot.covering_reason(job.scene_id, job.failed_at) for job in jobs]
            now = time.time()
            fresh = self._insert_jobs(conn, [job for job, reason in zip(jobs, reasons) if reason is None], now)
            ledger.write_records(conn, chunk_records(jobs, covered, fresh, earlier, run_id, now))
            conn.execute("COMMIT")
            self.last_lock_seconds = (locked - asked, time.perf_counter() - locked)
            failed = False
            self._ledger_ready_on = conn if self._session.active else None
        except _ROW_ERRORS as error:  # nothing was written; the caller may write the rows one by one
            raise self._rolled_back(conn, error)
        except sqlite3.Error as error:
            raise self._error("cannot write", error) from self._rolled_back(conn, error)
        finally:
            if collecting:
                gc.enable()
            self._session.release(conn, failed=failed, wrote=not failed)
        # Every row before ours was read inside this transaction, and nobody else wrote while it held
        # the lock: the next refresh starts after our rows (the ledger says which scenes this run queued).
        snapshot.last_row_id = max([snapshot.last_row_id, *(row for _, row in fresh.values())])
        return reasons

    def _insert_jobs(self, conn: sqlite3.Connection, jobs: Sequence[StagedJob], now: float) -> dict[int, tuple[int, int]]:
        """Insert the jobs' rows with one statement; return scene -> (job id, queue row) of each.

        The write lock is held, so AUTOINCREMENT gives the rows consecutive ids ending at
        ``last_insert_rowid()``.
        """
        if not jobs:
            return {}
        conn.executemany(
            f"INSERT INTO {self.table} (data, timestamp, status) VALUES (?, ?, {_READY})", [(job.blob, now) for job in jobs]
        )
        last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        first = last - len(jobs) + 1
        return {job.scene_id: (job.job_id, first + offset) for offset, job in enumerate(jobs)}

    def _rolled_back(self, conn: sqlite3.Connection, error: BaseException) -> BaseException:
        """Roll back if SQLite has not already done so; a failed rollback never hides ``error``."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_error:
                logger.debug("rollback after %s also failed: %s", error, rollback_error)
        return error

    def record(self, record: LedgerRecord) -> None:
        """Write one ledger record in its own transaction (the per-job path's claims and marks)."""
        conn = self._connect(create=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            ledger.ensure_ledger(conn)
            ledger.write_record(conn, record)
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error("cannot write the ledger in", error) from self._rolled_back(conn, error)
        finally:
            conn.close()

    def drop_claim(self, identity: tuple[int, str], scene_id: int) -> None:
        """Forget a claim whose job was not written (its enqueue failed)."""
        conn = self._connect(create=True)
        try:
            conn.execute(
                f"DELETE FROM {ledger.LEDGER_TABLE} WHERE scene_id = ? AND dlq_id = ? AND failed_at = ? AND state = ?",
                (scene_id, *identity, CLAIMED),
            )
        except sqlite3.Error as error:
            raise self._error("cannot write the ledger in", error) from error
        finally:
            conn.close()
