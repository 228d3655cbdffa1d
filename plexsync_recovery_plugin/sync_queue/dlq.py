"""PlexSync's dead-letter queue: a SQLite table of jobs that kept failing.

The file and schema are PlexSync's own (``<data_dir>/dlq.db``, table ``dead_letters``), so
this class can open a real PlexSync data directory and PlexSync can open ours.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import time
import traceback
from pathlib import Path
from typing import Any

from ..sqlite_uri import sqlite_uri

__all__ = ["DeadLetterQueue", "DLQ_FILE_NAME", "DlqUnavailable", "format_timestamp"]

logger = logging.getLogger(__name__)

DLQ_FILE_NAME = "dlq.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER,
    scene_id INTEGER,
    job_data BLOB,
    error_type TEXT,
    error_message TEXT,
    stack_trace TEXT,
    retry_count INTEGER,
    failed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_dlq_failed_at ON dead_letters(failed_at);
CREATE INDEX IF NOT EXISTS idx_dlq_scene_id ON dead_letters(scene_id);
"""

_COLUMNS = "id, job_id, scene_id, job_data, error_type, error_message, stack_trace, retry_count, failed_at"


def format_timestamp(unix_seconds: float) -> str:
    """Render Unix seconds as SQLite's ``CURRENT_TIMESTAMP`` text (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_seconds))


class DlqUnavailable(sqlite3.DatabaseError):
    """The DLQ file cannot be read: it is missing, not SQLite, or has no ``dead_letters`` table.

    The message names the file. A ``sqlite3.DatabaseError``, so ``except sqlite3.Error`` still catches it.
    """


def _row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}


class DeadLetterQueue:
    """The dead-letter queue in ``<data_dir>/dlq.db``.

    Attributes:
        data_dir: The PlexSync data directory.
        db_path: Path of the SQLite file.
        timeout: Seconds a connection waits for another writer's lock.
    """

    def __init__(self, data_dir: str | Path, *, timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DLQ_FILE_NAME
        self.timeout = timeout
        self._uri = sqlite_uri(self.db_path, "rw")  # never creates the file
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=self.timeout)
        try:
            with conn:
                conn.executescript(_SCHEMA)
        finally:
            conn.close()

    def _get_connection(self) -> sqlite3.Connection:
        """Open a new connection to the DLQ file; the caller closes it.

        The file is never created here: a DLQ that vanished after start-up is an error, not a
        new empty DLQ. A read-only file opens read-only.

        Raises:
            DlqUnavailable: The file is missing, is not a SQLite database, has no
                ``dead_letters`` table, or stayed locked for longer than ``timeout``.
        """
        try:
            conn = sqlite3.connect(self._uri, uri=True, timeout=self.timeout)
        except sqlite3.Error as error:
            reason = "the file is missing" if not self.db_path.exists() else str(error)
            raise DlqUnavailable(f"cannot open the DLQ {self.db_path}: {reason}") from None
        try:
            conn.execute("SELECT 1 FROM dead_letters LIMIT 0")
        except sqlite3.Error as error:
            conn.close()
            raise DlqUnavailable(f"cannot read the DLQ {self.db_path}: {error}") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = self._get_connection()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def add(self, job: dict[str, Any], error: BaseException, retry_count: int, *, failed_at: float | None = None) -> int:
        """Store a job that failed for good.

        Args:
            job: The job dict as queued (``scene_id`` and ``job_id`` are copied into columns).
            error: The final error; its class name becomes ``error_type``.
            retry_count: How many times the job was tried.
            failed_at: Unix seconds of the failure; now when omitted (as PlexSync does).

        Returns:
            The new row's id.
        """
        stack = "".join(traceback.format_exception(error))
        values: tuple[Any, ...] = (
            job.get("job_id"),
            job.get("scene_id"),
            pickle.dumps(job),
            type(error).__name__,
            str(error),
            stack,
            retry_count,
        )
        columns = "job_id, scene_id, job_data, error_type, error_message, stack_trace, retry_count"
        placeholders = "?, ?, ?, ?, ?, ?, ?"
        if failed_at is not None:
            columns += ", failed_at"
            placeholders += ", ?"
            values += (format_timestamp(failed_at),)
        conn = self._get_connection()
        try:
            with conn:
                cursor = conn.execute(f"INSERT INTO dead_letters ({columns}) VALUES ({placeholders})", values)
            row_id = int(cursor.lastrowid or 0)
        finally:
            conn.close()
        logger.debug("dead-lettered job for scene %s as entry %d (%s)", job.get("scene_id"), row_id, values[3])
        return row_id

    def get_recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the ``limit`` newest entries, newest first."""
        rows = self._query(f"SELECT {_COLUMNS} FROM dead_letters ORDER BY failed_at DESC, id DESC LIMIT ?", (limit,))
        return [_row_to_dict(row) for row in rows]

    def get_by_id(self, entry_id: int) -> dict[str, Any] | None:
        """Return one entry, or None if there is no such id."""
        rows = self._query(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (entry_id,))
        return _row_to_dict(rows[0]) if rows else None

    def get_count(self) -> int:
        """Return how many entries the DLQ holds."""
        return int(self._query("SELECT COUNT(*) FROM dead_letters")[0][0])

    def delete_older_than(self, days: int) -> int:
        """Delete entries older than ``days`` days (PlexSync's retention); return how many.

        Recovery never calls this: it is the retention job's tool, kept for parity with PlexSync.
        """
        conn = self._get_connection()
        try:
            with conn:
                cursor = conn.execute(
                    "DELETE FROM dead_letters WHERE failed_at < datetime('now', ?)", (f"-{int(days)} days",)
                )
            return cursor.rowcount
        finally:
            conn.close()

    def get_error_summary(self) -> dict[str, int]:
        """Return the number of entries per ``error_type``."""
        rows = self._query("SELECT error_type, COUNT(*) FROM dead_letters GROUP BY error_type ORDER BY error_type")
        return {row[0]: int(row[1]) for row in rows}
