"""The redrive ledger's table: which DLQ entries recovery has claimed or put back on the queue.

The table ``dead_letter_recoveries`` lives in the queue's own SQLite file, so on the batch
path a job and the record of its redrive are written in one transaction. The per-job path
(a queue object that is written one job at a time) records a *claim* before it writes the
job and marks it *done* after, so a crash between the two is visible to the next run.
PlexSync's ``dead_letters`` table is never written, and the ledger outlives the queue rows.

An entry is known by its DLQ id *and* its ``failed_at``: ids restart at 1 when somebody
deletes ``dlq.db``, and a new entry that reuses an old id must not be taken for redriven.
Only ``QueueFile`` opens the file; these functions work on its connections.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

__all__ = [
    "CLAIMED",
    "DONE",
    "LEDGER_TABLE",
    "LedgerRecord",
    "ensure_ledger",
    "entry_identity",
    "read_records",
    "pack_job",
    "unpack_job",
    "write_record",
    "write_records",
]

LEDGER_TABLE = "dead_letter_recoveries"
DONE = "done"
CLAIMED = "claimed"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    dlq_id INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    scene_id INTEGER NOT NULL,
    job_id INTEGER,
    queue_row_id INTEGER,
    run_id TEXT NOT NULL,
    recovered_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT '{DONE}',
    claim_seq INTEGER,
    PRIMARY KEY (dlq_id, failed_at)
)
"""
#: Columns added after the first release; a ledger written by it gets them on first write.
_ADDED_COLUMNS = {"state": f"TEXT NOT NULL DEFAULT '{DONE}'", "claim_seq": "INTEGER"}

#: Bound variables per ``IN (...)``: below the 999 of old SQLite builds.
_IN_CHUNK = 500


class LedgerRecord(NamedTuple):
    """One ledger row: an entry claimed (``state == CLAIMED``) or redriven (``DONE``)."""

    dlq_id: int
    failed_at: str
    scene_id: int
    job_id: int | None
    queue_row_id: int | None
    run_id: str
    recovered_at: float
    state: str
    claim_seq: int | None


_COLUMNS = ", ".join(LedgerRecord._fields)


def pack_job(job_id: int, queue_row: int) -> int:
    """A job id and its queue row in one int (queue rows stay below 2**40; the ledger's pointer to a job, kept compactly)."""
    return (job_id << 40) | queue_row


def unpack_job(packed: int) -> tuple[int, int]:
    """``(job id, queue row)`` of a ``pack_job`` value."""
    return packed >> 40, packed & ((1 << 40) - 1)



def entry_identity(entry: Mapping[str, Any]) -> tuple[int, str]:
    """``(dlq_id, failed_at)``: what identifies a DLQ entry in the ledger."""
    return int(entry["id"]), str(entry.get("failed_at") or "")


def ensure_ledger(conn: sqlite3.Connection) -> None:
    """Create the ledger table on ``conn``, or add the columns an older ledger lacks."""
    conn.execute(_SCHEMA)
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({LEDGER_TABLE})")}
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN {name} {declaration}")



def read_records(conn: sqlite3.Connection, identities: Iterable[tuple[int, str]]) -> dict[tuple[int, str], LedgerRecord]:
    """The records of those identities that have one; a ledger without the new columns reads them as done."""
    wanted = set(identities)
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({LEDGER_TABLE})")}
    if not present:
        return {}
    columns = ", ".join(name if name in present else _legacy_default(name) for name in LedgerRecord._fields)
    ids = sorted({dlq_id for dlq_id, _ in wanted})
    found: dict[tuple[int, str], LedgerRecord] = {}
    for offset in range(0, len(ids), _IN_CHUNK):
        chunk = ids[offset : offset + _IN_CHUNK]
        sql = f"SELECT {columns} FROM {LEDGER_TABLE} WHERE dlq_id IN ({','.join('?' * len(chunk))})"
        for row in conn.execute(sql, chunk):
            record = LedgerRecord(*row)
            if (record.dlq_id, record.failed_at) in wanted:
                found[(record.dlq_id, record.failed_at)] = record
    return found


def _legacy_default(name: str) -> str:
    return f"'{DONE}'" if name == "state" else "NULL"


def write_record(conn: sqlite3.Connection, record: LedgerRecord) -> None:
    """Insert or replace one record on ``conn``, inside the caller's transaction."""
    conn.execute(
        f"INSERT OR REPLACE INTO {LEDGER_TABLE} ({_COLUMNS}) VALUES ({', '.join('?' * len(LedgerRecord._fields))})",
        record,
    )


def write_records(conn: sqlite3.Connection, records: Sequence[LedgerRecord]) -> None:
    """Insert or replace many records with one statement, inside the caller's transaction."""
    if records:
        conn.executemany(
            f"INSERT OR REPLACE INTO {LEDGER_TABLE} ({_COLUMNS})"
            f" VALUES ({', '.join('?' * len(LedgerRecord._fields))})",
            records,
        )


def all_records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every record, oldest first, as dicts (for audits and tests)."""
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(f"SELECT * FROM {LEDGER_TABLE} ORDER BY recovered_at, dlq_id")]
    finally:
        conn.row_factory = None
