"""The redrive ledger: which DLQ entries recovery has already put back on the queue.

It lives in the queue's own SQLite file (table ``dead_letter_recoveries`` beside
persist-queue's table), so a job and the record of its redrive are written in one
transaction: a crash leaves both or neither. PlexSync's ``dead_letters`` table is never
written. The ledger outlives the queue's rows: once the worker has acked and cleared a
recovered job, the ledger still says its DLQ entry was redriven.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable

from .operations import QUEUE_FILE_NAME

__all__ = ["LEDGER_TABLE", "RecoveryLedger", "ensure_ledger"]

LEDGER_TABLE = "dead_letter_recoveries"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    dlq_id INTEGER PRIMARY KEY,
    scene_id INTEGER NOT NULL,
    job_id INTEGER,
    queue_row_id INTEGER,
    run_id TEXT NOT NULL,
    recovered_at REAL NOT NULL
)
"""

#: Bound variables per ``IN (...)``: below the 999 of old SQLite builds.
_IN_CHUNK = 500


def ensure_ledger(conn: sqlite3.Connection) -> None:
    """Create the ledger table on ``conn`` if it is not there."""
    conn.execute(_SCHEMA)


class RecoveryLedger:
    """Read and write the ledger in ``<queue_path>/data.db``."""

    def __init__(self, queue_path: str | Path, *, timeout: float = 30.0) -> None:
        self.db_path = Path(queue_path) / QUEUE_FILE_NAME
        self.timeout = timeout

    def connect(self) -> sqlite3.Connection:
        """Open the queue file with the ledger table in place; the caller closes it."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=self.timeout)
        with conn:
            ensure_ledger(conn)
        return conn

    def redriven(self, dlq_ids: Iterable[int]) -> set[int]:
        """Return those of ``dlq_ids`` that were already redriven."""
        ids = list(dlq_ids)
        if not ids or not self.db_path.exists():
            return set()
        conn = self.connect()
        try:
            found: set[int] = set()
            for offset in range(0, len(ids), _IN_CHUNK):
                chunk = ids[offset : offset + _IN_CHUNK]
                rows = conn.execute(
                    f"SELECT dlq_id FROM {LEDGER_TABLE} WHERE dlq_id IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update(row[0] for row in rows)
            return found
        finally:
            conn.close()

    @staticmethod
    def record(
        conn: sqlite3.Connection,
        *,
        dlq_id: int,
        scene_id: int,
        job_id: int | None,
        queue_row_id: int | None,
        run_id: str,
        recovered_at: float,
    ) -> None:
        """Write one record on ``conn``, inside the caller's transaction."""
        conn.execute(
            f"INSERT INTO {LEDGER_TABLE} (dlq_id, scene_id, job_id, queue_row_id, run_id, recovered_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (dlq_id, scene_id, job_id, queue_row_id, run_id, recovered_at),
        )

    def records(self) -> list[dict[str, Any]]:
        """Return every record, oldest first (for audits and tests)."""
        if not self.db_path.exists():
            return []
        conn = self.connect()
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(f"SELECT * FROM {LEDGER_TABLE} ORDER BY recovered_at, dlq_id").fetchall()
            return [dict(row) for row in rows]
        finally:
            conn.close()
