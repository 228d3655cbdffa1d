"""Where recovered jobs go: straight onto PlexSync's queue, with a ledger record for each.

``AckQueueBatchSink`` writes a whole chunk of jobs and their ledger records in one SQLite
transaction, in exactly the rows ``SQLiteAckQueue.put`` writes, so a running worker and a
fresh ``SQLiteAckQueue`` read them as if ``put`` had. ``PerJobSink`` calls an ``enqueue``
function per job, for any other queue object or when ``enqueue`` was replaced.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

from persistqueue import SQLiteAckQueue

from .ledger import RecoveryLedger, ensure_ledger
from .operations import QUEUE_FILE_NAME, make_job

__all__ = ["AckQueueBatchSink", "JobSink", "PerJobSink", "StagedJob"]

logger = logging.getLogger(__name__)

_READY = 0  # persist-queue's AckStatus.inited: what put() writes


class StagedJob(NamedTuple):
    """A job accepted by a sink and not yet known to be written."""

    identity: tuple[int, str]
    scene_id: int
    job: dict[str, Any]


class JobSink(Protocol):
    """Takes jobs one at a time; ``flush`` makes everything taken so far durable."""

    def add(self, identity: tuple[int, str], scene_id: int, update_type: str, data: Any) -> None:
        """Accept the job of the DLQ entry ``identity`` (``(dlq_id, failed_at)``); raise if it cannot be queued."""

    def add_duplicate(self, identity: tuple[int, str], scene_id: int) -> None:
        """Record that entry ``identity`` is covered by a job already queued for ``scene_id``.

        The job is this run's when it queued one for the scene (its id and queue row are
        recorded), else one PlexSync queued (recorded without them).
        """

    def flush(self) -> None:
        """Write what was accepted since the last flush; on error none of it was written."""

    def close(self) -> None:
        """Release connections."""


class PerJobSink:
    """Calls ``enqueue_fn(queue, scene_id, update_type, data)`` per job, then records it.

    The record follows the enqueue: after a crash between the two, the job is in the queue
    and the next run skips its scene as already queued, so nothing is sent twice.
    """

    def __init__(self, queue: Any, enqueue_fn: Callable[..., Any], ledger: RecoveryLedger | None, run_id: str) -> None:
        self.queue = queue
        self.enqueue_fn = enqueue_fn
        self.ledger = ledger
        self.run_id = run_id
        self._conn: sqlite3.Connection | None = None
        self._jobs: dict[int, int | None] = {}  # scene id -> job id, of the jobs this run queued

    def add(self, identity: tuple[int, str], scene_id: int, update_type: str, data: Any) -> None:
        """Enqueue now, then write the ledger record."""
        job = self.enqueue_fn(self.queue, scene_id, update_type, data)
        self._jobs[scene_id] = job.get("job_id") if isinstance(job, dict) else None
        self._record(identity, scene_id)

    def add_duplicate(self, identity: tuple[int, str], scene_id: int) -> None:
        """Record the entry as covered by the scene's job of this run."""
        self._record(identity, scene_id)

    def _record(self, identity: tuple[int, str], scene_id: int) -> None:
        if self.ledger is None:
            return
        try:
            if self._conn is None:
                self._conn = self.ledger.connect()
            with self._conn:
                RecoveryLedger.record(
                    self._conn,
                    dlq_id=identity[0],
                    failed_at=identity[1],
                    scene_id=scene_id,
                    job_id=self._jobs.get(scene_id),
                    queue_row_id=None,
                    run_id=self.run_id,
                    recovered_at=time.time(),
                )
        except sqlite3.Error as error:
            logger.error("queued scene %s but could not record DLQ entry %s as redriven: %s", scene_id, identity[0], error)

    def flush(self) -> None:
        """Nothing to do: every job was written by ``add``."""

    def close(self) -> None:
        """Close the ledger connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AckQueueBatchSink:
    """Writes staged jobs plus ledger records to a ``SQLiteAckQueue``'s file in one transaction."""

    def __init__(self, queue: SQLiteAckQueue, run_id: str, *, timeout: float = 30.0) -> None:
        self.queue = queue
        self.run_id = run_id
        self.timeout = timeout
        self._table = f"ack_queue_{queue.name}"
        self._staged: list[StagedJob] = []
        self._duplicates: list[tuple[tuple[int, str], int]] = []
        self._written: dict[int, tuple[int, int | None]] = {}  # scene id -> (job id, queue row) of this run
        self._conn: sqlite3.Connection | None = None

    def add(self, identity: tuple[int, str], scene_id: int, update_type: str, data: Any) -> None:
        """Stage a job; it is written by the next ``flush``."""
        self._staged.append(StagedJob(identity, scene_id, make_job(scene_id, update_type, data)))

    def add_duplicate(self, identity: tuple[int, str], scene_id: int) -> None:
        """Stage a ledger record pointing at the scene's job of this run; written by the next ``flush``."""
        self._duplicates.append((identity, scene_id))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(Path(self.queue.path) / QUEUE_FILE_NAME, timeout=self.timeout, isolation_level=None)
            ensure_ledger(conn)
            self._conn = conn
        return self._conn

    def flush(self) -> None:
        """Write every staged job and ledger record, all or nothing."""
        staged, self._staged = self._staged, []
        duplicates, self._duplicates = self._duplicates, []
        if not staged and not duplicates:
            return
        serializer = self.queue._serializer  # the queue's own, so rows match put() exactly
        rows = [(serializer.dumps(item.job), time.time()) for item in staged]
        insert = f"INSERT INTO {self._table} (data, timestamp, status) VALUES (?, ?, {_READY})"
        written = dict(self._written)
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item, row in zip(staged, rows):
                queue_row_id = conn.execute(insert, row).lastrowid
                written[item.scene_id] = (item.job["job_id"], queue_row_id)
                self._record(conn, item.identity, item.scene_id, written[item.scene_id], row[1])
            for identity, scene_id in duplicates:
                self._record(conn, identity, scene_id, written.get(scene_id, (None, None)), time.time())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._written = written
        # Let an in-process worker blocked in queue.get() see the new jobs at once.
        self.queue.total += len(staged)
        self.queue.put_event.set()

    def _record(
        self, conn: sqlite3.Connection, identity: tuple[int, str], scene_id: int, job: tuple[Any, Any], at: float
    ) -> None:
        RecoveryLedger.record(
            conn,
            dlq_id=identity[0],
            failed_at=identity[1],
            scene_id=scene_id,
            job_id=job[0],
            queue_row_id=job[1],
            run_id=self.run_id,
            recovered_at=at,
        )

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
