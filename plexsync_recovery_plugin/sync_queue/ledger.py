"""The redrive ledger: which DLQ entries recovery has already put back on the queue.

It lives in the queue's own SQLite file (table ``dead_letter_recoveries`` beside
persist-queue's table), so a job and the record of its redrive are written in one
transaction: a crash leaves both or neither. PlexSync's ``dead_letters`` table is never
written. The ledger outlives the queue's rows: once the worker has acked and cleared a
recovered job, the ledger still says its DLQ entry was redriven.

An entry is known by its DLQ id *and* its ``failed_at``: ids restart at 1 when somebody
deletes ``dlq.db``, and a new entry that reuses an old id must not be taken for redriven.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..sqlite_uri import sqlite_uri
from .operations import QUEUE_FILE_NAME

__all__ = ["LEDGER_TABLE", "RecoveryLedger", "ensure_ledger", "entry_identity"]

LEDGER_TABLE = "dead_letter_recoveries"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    dlq_id INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    scene_id INTEGER NOT NULL,
    job_id INTEGER,
    queue_row_id INTEGER,
    run_id TEXT NOT NULL,
    recovered_at REAL NOT NULL,
    PRIMARY KEY (dlq_id, failed_at)
)
"""

#: Bound variables per ``IN (...)``: below the 999 of old SQLite builds.
_IN_CHUNK = 500


def entry_identity(entry: Mapping[str, Any]) -> tuple[int, str]:
    """``(dlq_id, failed_at)``: what identifies a DLQ entry in the ledger."""
    return int(entry["id"]), str(entry.get("failed_at") or "")


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

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Run a query read-only; no file or no ledger table yet reads as no rows (nothing is created)."""
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(sqlite_uri(self.db_path, "ro"), uri=True, timeout=self.timeout)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, list(params)).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        finally:
            conn.close()

    def redriven(self, identities: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        """Return those of the ``(dlq_id, failed_at)`` identities that were already redriven."""
        wanted = set(identities)
        ids = sorted({dlq_id for dlq_id, _ in wanted})
        found: set[tuple[int, str]] = set()
        for offset in range(0, len(ids), _IN_CHUNK):
            chunk = ids[offset : offset + _IN_CHUNK]
            rows = self._read(
                f"SELECT dlq_id, failed_at FROM {LEDGER_TABLE} WHERE dlq_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(identity for identity in map(tuple, rows) if identity in wanted)
        return found

    @staticmethod
    def record(
        conn: sqlite3.Connection,
        *,
        dlq_id: int,
        failed_at: str,
        scene_id: int,
        job_id: int | None,
        queue_row_id: int | None,
        run_id: str,
        recovered_at: float,
    ) -> None:
        """Write one record on ``conn``, inside the caller's transaction."""
        conn.execute(
            f"INSERT INTO {LEDGER_TABLE} (dlq_id, failed_at, scene_id, job_id, queue_row_id, run_id, recovered_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dlq_id, failed_at, scene_id, job_id, queue_row_id, run_id, recovered_at),
        )

    def records(self) -> list[dict[str, Any]]:
        """Return every record, oldest first (for audits and tests)."""
        return [dict(row) for row in self._read(f"SELECT * FROM {LEDGER_TABLE} ORDER BY recovered_at, dlq_id")]
