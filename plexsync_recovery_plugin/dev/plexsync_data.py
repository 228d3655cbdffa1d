"""A PlexSync data directory written as PlexSync writes it, for tests, the demo and the benchmark.

The plugin only reads PlexSync's files (``dlq.db`` above all); this is the one place that
writes them as PlexSync would: ``dlq.db`` with PlexSync's schema and only PlexSync's index
names, dead letters holding ``pickle.dumps(job)``, queue rows through a real
``persistqueue.SQLiteAckQueue``, and ``outage_history.json`` records. It imports no test
server, so importing it is cheap.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "DLQ_COLUMNS",
    "DLQ_SCHEMA",
    "PLEXSYNC_DLQ_INDEXES",
    "PlexSyncData",
    "Stored",
    "plexsync_timestamp",
]

#: PlexSync's ``dlq.db`` schema: its table and its two indexes, under its own names.
DLQ_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER,
    scene_id INTEGER,
    job_data BLOB,
    error_type TEXT,
    error_message TEXT,
    stack_trace TEXT,
    retry_count INTEGER,
    failed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)""",
    "CREATE INDEX IF NOT EXISTS idx_failed_at ON dead_letters(failed_at)",
    "CREATE INDEX IF NOT EXISTS idx_scene_id ON dead_letters(scene_id)",
)
PLEXSYNC_DLQ_INDEXES = ("idx_failed_at", "idx_scene_id")
#: The columns a row tuple of :meth:`PlexSyncData.insert_dead_letter_rows` gives, in order.
DLQ_COLUMNS = ("job_id", "scene_id", "job_data", "error_type", "error_message", "stack_trace", "retry_count", "failed_at")
_QUEUE_STATUSES = ("pending", "unack", "acked", "ack_failed")
_DEFAULT = object()


def plexsync_timestamp(unix_seconds: float) -> str:
    """Unix seconds as SQLite's ``CURRENT_TIMESTAMP`` text would have stored them (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_seconds))


@dataclass(frozen=True)
class Stored:
    """A ``failed_at`` stored exactly as given: a Unix number, None (NULL), any text or bytes.

    Attributes:
        value: The SQLite value to store.
    """

    value: Any


def _stack_trace(error_type: str, error_message: str) -> str:
    """Text shaped like ``traceback.format_exc()``, which PlexSync stores."""
    return f'Traceback (most recent call last):\n  File "worker/processor.py", line 1, in process\n{error_type}: {error_message}\n'


class PlexSyncData:
    """Writes PlexSync's files in one data directory.

    Attributes:
        data_dir: The PlexSync data directory (created when missing).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def dlq_path(self) -> Path:
        """``<data_dir>/dlq.db``."""
        return self.data_dir / "dlq.db"

    def create_dlq(self) -> Path:
        """Create ``dlq.db`` as PlexSync's ``DeadLetterQueue`` does (nothing changes if it exists)."""
        conn = sqlite3.connect(self.dlq_path)
        try:
            with conn:
                for statement in DLQ_SCHEMA:
                    conn.execute(statement)
        finally:
            conn.close()
        return self.dlq_path

    @staticmethod
    def dead_letter_row(
        job: Mapping[str, Any],
        *,
        error_type: str = "PlexServerDown",
        error_message: str = "boom",
        retry_count: int = 3,
        failed_at: float | str | Stored | None = None,
        stack_trace: str | None = None,
        job_data: Any = _DEFAULT,
        scene_id: Any = _DEFAULT,
        job_id: Any = _DEFAULT,
    ) -> tuple[Any, ...]:
        """One ``dead_letters`` row as PlexSync writes it, in :data:`DLQ_COLUMNS` order.

        Args:
            job: The job dict; pickled into ``job_data``, its ``scene_id``/``job_id`` copied.
            error_type: The failing exception's class name.
            error_message: ``str()`` of that exception.
            retry_count: Attempts made before dead-lettering.
            failed_at: Unix seconds (stored as ``CURRENT_TIMESTAMP`` text), raw text stored
                as is, :class:`Stored` for any other value, or None for now (the column default).
            stack_trace: The stored trace; a PlexSync-like one when None.
            job_data: Raw bytes (or None) instead of the pickled job, for hostile rows.
            scene_id: The ``scene_id`` column instead of the job's.
            job_id: The ``job_id`` column instead of the job's.
        """
        if isinstance(failed_at, Stored):
            stored_at: Any = failed_at.value
        elif isinstance(failed_at, (int, float)):
            stored_at = plexsync_timestamp(failed_at)
        else:
            stored_at = failed_at  # text as given; None means the column default, see add_dead_letters
        return (
            job.get("job_id") if job_id is _DEFAULT else job_id,
            job.get("scene_id") if scene_id is _DEFAULT else scene_id,
            pickle.dumps(dict(job)) if job_data is _DEFAULT else job_data,
            error_type,
            error_message,
            _stack_trace(error_type, error_message) if stack_trace is None else stack_trace,
            retry_count,
            stored_at,
        )

    def add_dead_letter(self, job: Mapping[str, Any], **fields: Any) -> int:
        """Dead-letter one job as PlexSync does; ``fields`` as :meth:`dead_letter_row`. Returns its id."""
        return self.add_dead_letters([dict(fields, job=job)])[0]

    def add_dead_letters(self, entries: Iterable[Mapping[str, Any]]) -> list[int]:
        """Dead-letter several jobs in one transaction (creating ``dlq.db`` if needed); return their ids.

        Each entry holds ``job`` and any keyword of :meth:`dead_letter_row`. An entry without
        ``failed_at`` (or with None) gets the column default, ``CURRENT_TIMESTAMP``, as PlexSync's do.
        """
        self.create_dlq()
        conn = sqlite3.connect(self.dlq_path)
        ids: list[int] = []
        try:
            with conn:
                for entry in entries:
                    fields = dict(entry)
                    row = self.dead_letter_row(fields.pop("job"), **fields)
                    columns = DLQ_COLUMNS[:-1] if entry.get("failed_at") is None else DLQ_COLUMNS
                    sql = f"INSERT INTO dead_letters ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                    ids.append(int(conn.execute(sql, row[: len(columns)]).lastrowid or 0))
        finally:
            conn.close()
        return ids

    def insert_dead_letter_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Insert raw row tuples (:data:`DLQ_COLUMNS` order) with one ``executemany`` in one transaction.

        The fast path for large DLQs (the benchmark's million rows); ``failed_at`` is stored as given.
        """
        self.create_dlq()
        conn = sqlite3.connect(self.dlq_path)
        try:
            with conn:
                conn.executemany(
                    f"INSERT INTO dead_letters ({', '.join(DLQ_COLUMNS)}) VALUES ({', '.join('?' * len(DLQ_COLUMNS))})",
                    rows,
                )
        finally:
            conn.close()

    def queue_jobs(
        self, jobs: Iterable[Mapping[str, Any]], *, status: str = "pending", timestamp: float | None = None
    ) -> list[int]:
        """Put jobs on PlexSync's queue through a real ``SQLiteAckQueue``; return their row ids.

        Args:
            jobs: Job dicts, put in order.
            status: ``pending`` (as ``put`` leaves it), ``unack`` (taken by a worker), ``acked``
                (recently completed) or ``ack_failed``: reached with the queue's own ``get``/``ack``.
            timestamp: The rows' ``timestamp`` (Unix seconds) instead of the time of the put.

        Raises:
            ValueError: ``status`` is not one of the four.
        """
        from persistqueue import SQLiteAckQueue

        if status not in _QUEUE_STATUSES:
            raise ValueError(f"queue status must be one of {', '.join(_QUEUE_STATUSES)}, got {status!r}")
        queue = SQLiteAckQueue(str(self.data_dir / "queue"), auto_resume=False)
        try:
            ids = [int(queue.put(dict(job)) or 0) for job in jobs]
            for row_id in ids if status != "pending" else []:
                queue.get(id=row_id, raw=True)
                if status == "acked":
                    queue.ack(id=row_id)
                elif status == "ack_failed":
                    queue.ack_failed(id=row_id)
        finally:
            queue.close()
        if timestamp is not None and ids:
            self._set_queue_timestamps(ids, timestamp)
        return ids

    def _set_queue_timestamps(self, ids: list[int], timestamp: float) -> None:
        conn = sqlite3.connect(self.data_dir / "queue" / "data.db")
        try:
            with conn:
                conn.executemany("UPDATE ack_queue_default SET timestamp = ? WHERE _id = ?", [(timestamp, i) for i in ids])
        finally:
            conn.close()

    def write_outage_history(self, records: Iterable[Mapping[str, Any]]) -> Path:
        """Write ``outage_history.json`` as PlexSync's worker does; return its path.

        Each record gives ``started_at`` and optionally ``ended_at`` and ``jobs_affected``;
        ``duration`` is derived from them unless given.
        """
        history = []
        for record in records:
            ended = record.get("ended_at")
            duration = record.get("duration", None if ended is None else float(ended) - float(record["started_at"]))
            history.append({"started_at": record["started_at"], "ended_at": ended, "duration": duration,
                            "jobs_affected": record.get("jobs_affected", 0)})
        path = self.data_dir / "outage_history.json"
        path.write_text(json.dumps(history, indent=2))
        return path
