"""The redrive ledger's table: which DLQ entries recovery has claimed or put back on the queue.

The table ``dead_letter_recoveries`` lives in the queue's own SQLite file, so on the batch
path a job and the record of its redrive are written in one transaction. The per-job path
(a queue object that is written one job at a time) records a *claim* before it writes the
job and marks it *done* after, so a crash between the two is visible to the next run.
PlexSync's ``dead_letters`` table is never written, and the ledger outlives the queue rows.

An entry is known by its DLQ id *and* its ``failed_at``: ids restart at 1 when somebody
deletes ``dlq.db``, and a new entry that reuses an old id must not be taken for redriven.
Records are keyed by scene first (``scene_id, dlq_id, failed_at``; an entry's scene never
changes): a recovery goes through its window scene by scene, so each chunk's records land
in one stretch of the key instead of all over it (keyed by DLQ id, a 1,000-entry chunk
rewrote most of the index's pages, doubling what every transaction wrote). A ledger of
the first layout (keyed by DLQ id) is renamed ``dead_letter_recoveries_v1`` on the first
write, an O(1) change, and is still read; new records go to the new table only.
Only ``QueueFile`` opens the file; these functions work on its connections.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

__all__ = [
    "CLAIMED",
    "DONE",
    "LEDGER_TABLE",
    "LEGACY_TABLE",
    "LedgerRecord",
    "ensure_ledger",
    "entry_identity",
    "read_records",
    "run_jobs",
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
    PRIMARY KEY (scene_id, dlq_id, failed_at)
)
"""
#: Where a ledger of the first layout (``PRIMARY KEY (dlq_id, failed_at)``) is kept, read only.
LEGACY_TABLE = f"{LEDGER_TABLE}_v1"
_FIRST_LAYOUT_KEY = ["dlq_id", "failed_at"]
#: Columns added after the first release (read as done / NULL where a legacy ledger lacks them).
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


def run_jobs(conn: sqlite3.Connection, run_id: str, scene_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``(job id, queue row)`` of the job run ``run_id`` queued for each of ``scene_ids`` that has one.

    Asked by scene, the key's first column: a point lookup per scene, so a run needs no
    map of its own jobs in memory to point a later entry of a scene at the scene's job.
    """
    scenes = sorted(set(scene_ids))
    found: dict[int, tuple[int, int]] = {}
    for offset in range(0, len(scenes), _IN_CHUNK):
        chunk = scenes[offset : offset + _IN_CHUNK]
        sql = (f"SELECT scene_id, job_id, queue_row_id FROM {LEDGER_TABLE} WHERE scene_id IN ({','.join('?' * len(chunk))})"
               " AND run_id = ? AND job_id IS NOT NULL AND queue_row_id IS NOT NULL")
        found.update((row[0], (row[1], row[2])) for row in conn.execute(sql, (*chunk, run_id)))
    return found


def entry_identity(entry: Mapping[str, Any]) -> tuple[int, str]:
    """``(dlq_id, failed_at)``: what identifies a DLQ entry in the ledger."""
    return int(entry["id"]), str(entry.get("failed_at") or "")


def ensure_ledger(conn: sqlite3.Connection) -> None:
    """Create the ledger table on ``conn``; set a ledger of the first layout aside as ``LEGACY_TABLE``."""
    if _key_columns(conn, LEDGER_TABLE) == _FIRST_LAYOUT_KEY and not _key_columns(conn, LEGACY_TABLE):
        conn.execute(f"ALTER TABLE {LEDGER_TABLE} RENAME TO {LEGACY_TABLE}")
    conn.execute(_SCHEMA)
    present = _columns(conn, LEDGER_TABLE)
    for name, declaration in _ADDED_COLUMNS.items():  # a first-layout table that could not be set aside
        if name not in present:
            conn.execute(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN {name} {declaration}")


def _key_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's primary key columns in key order; [] when it does not exist."""
    columns = [(row[5], row[1]) for row in conn.execute(f"PRAGMA table_info({table})") if row[5]]
    return [name for _, name in sorted(columns)]


def read_records(
    conn: sqlite3.Connection, entries: Sequence[tuple[int, tuple[int, str]]]
) -> dict[tuple[int, str], LedgerRecord]:
    """The records of those ``(scene_id, (dlq_id, failed_at))`` entries that have one.

    The current table is asked by scene (its key's first column), a first-layout table by
    DLQ id; a current record wins over a legacy one. Tables that do not exist are skipped.
    """
    wanted = {identity for _, identity in entries}
    scenes = sorted({scene_id for scene_id, _ in entries})
    found: dict[tuple[int, str], LedgerRecord] = {}
    for table, column, keys in ((LEGACY_TABLE, "dlq_id", sorted({dlq_id for dlq_id, _ in wanted})),
                                (LEDGER_TABLE, "scene_id", scenes)):
        present = _columns(conn, table)
        if not present:
            continue
        columns = ", ".join(name if name in present else _legacy_default(name) for name in LedgerRecord._fields)
        for offset in range(0, len(keys), _IN_CHUNK):
            chunk = keys[offset : offset + _IN_CHUNK]
            sql = f"SELECT {columns} FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})"
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


def write_records(conn: sqlite3.Connection, records: Sequence[tuple[Any, ...]]) -> None:
    """Insert or replace many records (``LedgerRecord``s or tuples in its field order) with one statement, inside the caller's transaction."""
    if records:
        conn.executemany(
            f"INSERT OR REPLACE INTO {LEDGER_TABLE} ({_COLUMNS})"
            f" VALUES ({', '.join('?' * len(LedgerRecord._fields))})",
            records,
        )


def all_records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every record, oldest first, as dicts of ``LedgerRecord``'s fields (for audits and tests).

    A current record hides the legacy record of the same entry; a legacy record without
    ``state`` reads as done, as :func:`read_records` reads it.
    """
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for table in (LEGACY_TABLE, LEDGER_TABLE):
        present = _columns(conn, table)
        if present:
            columns = ", ".join(name if name in present else _legacy_default(name) for name in LedgerRecord._fields)
            for row in conn.execute(f"SELECT {columns} FROM {table}"):
                record = LedgerRecord(*row)
                found[(record.dlq_id, record.failed_at)] = record._asdict()
    return sorted(found.values(), key=lambda record: (record["recovered_at"], record["dlq_id"]))


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
