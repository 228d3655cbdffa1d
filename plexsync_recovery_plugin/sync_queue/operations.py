"""PlexSync's job queue (``queue/data.db``): what is queued, and writing recovered jobs with their ledger.

The queue file has one owner, ``QueueFile``. It reads which scenes are queued or were acked
(the live-queue gate), and appends jobs in exactly the rows ``SQLiteAckQueue.put`` writes,
with the plugin's ``dead_letter_recoveries`` ledger row in the same short transaction, so a
job is never written twice and PlexSync's worker never waits long for the lock. The seed's
``enqueue``, ``get_queued_scene_ids`` and friends keep their names here.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import os
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, NamedTuple, Sequence

from persistqueue import SQLiteAckQueue

from ..decode import QUEUE_LIMITS, QUEUE_MAX_PICKLE_BYTES, safe_loads
from ..sqlite_uri import sqlite_uri

__all__ = ['CLAIMED', 'DONE', 'LEDGER_TABLE', 'LEGACY_TABLE', 'LedgerRecord', 'ensure_ledger', 'entry_identity', 'read_records', 'run_jobs', 'write_record', 'write_records', 'CHECKPOINT_FRAMES', 'QueueSession', 'ACKED', 'LIVE_STATUSES', 'QueueSnapshot', 'QueueRow', 'read_scene_id', 'scene_id_of_job', 'ACKED_SCAN_MARGIN', 'decoded', 'first_row_since', 'high_water', 'PendingJob', 'StagedJob', 'chunk_records', 'MIN_ROWS', 'TARGET_SECONDS', 'LockBudget', 'QUEUE_FILE_NAME', 'QueueFile', 'QueueFileError', 'QUEUE_DIR_NAME', 'QUEUE_TABLE', 'enqueue', 'get_acked_scene_times', 'get_queued_scene_ids', 'make_job', 'open_queue']


# ==== ledger ====================================================================================
# The redrive ledger's table: which DLQ entries recovery has claimed or put back on the queue.
#
# The table ``dead_letter_recoveries`` lives in the queue's own SQLite file, so on the batch
# path a job and the record of its redrive are written in one transaction. The per-job path
# (a queue object that is written one job at a time) records a *claim* before it writes the
# job and marks it *done* after, so a crash between the two is visible to the next run.
# PlexSync's ``dead_letters`` table is never written, and the ledger outlives the queue rows.
#
# An entry is known by its DLQ id *and* its ``failed_at``: ids restart at 1 when somebody
# deletes ``dlq.db``, and a new entry that reuses an old id must not be taken for redriven.
# Records are keyed by scene first (``scene_id, dlq_id, failed_at``; an entry's scene never
# changes): a recovery goes through its window scene by scene, so each chunk's records land
# in one stretch of the key instead of all over it (keyed by DLQ id, a 1,000-entry chunk
# rewrote most of the index's pages, doubling what every transaction wrote). A ledger of
# the first layout (keyed by DLQ id) is renamed ``dead_letter_recoveries_v1`` on the first
# write, an O(1) change, and is still read; new records go to the new table only.
# Only ``QueueFile`` opens the file; these functions work on its connections.

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


# ==== queue session =============================================================================
# One connection to PlexSync's queue file for the chunks of one run, kept off PlexSync's way.
#
# Why: opening a connection per chunk costs ~2 ms and a cold page cache (~0.35 s of a
# 100,000-entry run). And every millisecond a chunk's transaction holds the write lock, a
# PlexSync worker taking a job may wait; so the session's commits do not wait for the disk
# (``synchronous = NORMAL``) and do not copy the WAL back (no auto-checkpoint): between
# chunks :meth:`QueueSession.checkpoint` does both with no lock held, once a few hundred
# pages have gathered, and as the session ends the rest is copied and the WAL synced, so a
# finished run is as durable as one committed with a full sync.

logger = logging.getLogger(__name__)

#: WAL frames (pages) a session lets gather before copying them back: well under the 1,000
#: at which SQLite makes the next commit, often PlexSync's worker's, copy them itself. A
#: 1,000-entry chunk writes about 70; each copy costs two fsyncs (tens of ms on a disk).
CHECKPOINT_FRAMES = 350


class QueueSession:
    """The queue file's connection for a run, opened on first use; outside a run, one per call.

    Args:
        connect: Opens a new read-write connection to the file (``isolation_level=None``).
        db_path: The file, whose ``-wal`` is synced when the session ends.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], db_path: Path) -> None:
        self._connect = connect
        self._wal_path = Path(f"{db_path}-wal")
        self._active = False
        self._held: sqlite3.Connection | None = None
        self._wrote = False
        self._chunks_since_copy = 0
        self._frames_per_chunk = float(CHECKPOINT_FRAMES)  # unknown until the first copy: copy then
        # The copies between chunks run on a thread of their own, with a connection of their own.
        self._copier: ThreadPoolExecutor | None = None
        self._copier_conn: sqlite3.Connection | None = None
        self._copying: tuple[Future[int], int] | None = None  # the copy under way, and the chunks it covers

    @property
    def active(self) -> bool:
        """Whether a run's session is open."""
        return self._active

    @contextmanager
    def running(self) -> Iterator[None]:
        """The session of one run (from one thread); it holds no lock between calls."""
        self._active, self._wrote, self._chunks_since_copy = True, False, 0
        try:
            yield
        finally:
            self._active = False
            self.release(self._held, failed=True)  # syncs the WAL if the session wrote

    def connection(self) -> sqlite3.Connection:
        """The session's connection, or a new one outside a session (give it back with :meth:`release`)."""
        if not self._active:
            return self._connect()
        if self._held is None:
            self._held = self._connect()
            self._held.execute("PRAGMA wal_autocheckpoint = 0")
            self._held.execute("PRAGMA synchronous = NORMAL")
        return self._held

    def release(self, conn: sqlite3.Connection | None, *, failed: bool = False, wrote: bool = False) -> None:
        """Close ``conn`` unless it is the session's; close that one too after an error (syncing what it wrote)."""
        self._wrote = self._wrote or wrote
        if conn is None or (conn is self._held and not failed):
            return
        if conn is self._held:
            self._stop_copier()
            if self._wrote:
                self._copy_back(conn)
                self._sync_wal()
            self._held = None
        conn.close()

    def checkpoint(self) -> None:
        """After a chunk: copy the WAL's pages into the file (PASSIVE: no lock held), about every ``CHECKPOINT_FRAMES``.

        How many pages a chunk writes is learnt from the last copy, so the next chunk is
        not let past the budget. Left to SQLite, the commit that finds 1,000 pages in the WAL copies them, and after our
        chunks that is often PlexSync's worker acking one job: tens of ms it would wait.

        The copy runs on a thread of its own while the run reads, decodes and screens the next
        chunk: it is two fsyncs and a page copy, all outside the interpreter's lock (done in
        line, it was 0.04-0.07 s of a 20,000-entry run, 0.13 s of a 100,000-entry one). The
        next chunk's write waits for it (:meth:`before_write`, usually long done): SQLite
        starts the WAL over only at a write that finds every page copied, so the WAL still
        holds at most the budget.
        """
        if self._held is None:
            return
        self._chunks_since_copy += 1
        if (self._chunks_since_copy + 1) * self._frames_per_chunk > CHECKPOINT_FRAMES:
            if self._copier is None:
                self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plexsync-recovery-checkpoint")
            self._copying = (self._copier.submit(self._copy_in_background), self._chunks_since_copy)
            self._chunks_since_copy = 0

    def before_write(self) -> None:
        """Before a chunk's write transaction: wait for the copy under way, if any."""
        if self._copying is not None:
            self._learn(*self._copying)

    def _learn(self, copy: "Future[int]", chunks: int) -> None:
        """Wait for a copy and learn from it how many pages a chunk writes."""
        self._copying = None
        frames = copy.result()  # _copy_back never raises
        if frames:  # PlexSync's frames count too: a busy worker makes copies more frequent
            self._frames_per_chunk = frames / chunks

    def _copy_in_background(self) -> int:
        """On the copier's thread: a PASSIVE checkpoint on its own connection (opened on first use)."""
        if self._copier_conn is None:
            try:
                self._copier_conn = self._connect()
                self._copier_conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as error:
                logger.debug("could not open a connection to copy %s back: %s", self._wal_path, error)
                return 0
        return self._copy_back(self._copier_conn)

    def _stop_copier(self) -> None:
        """Wait for the copy under way and close the copier's connection on its thread (the session ends)."""
        if self._copier is None:
            return
        if self._copying is not None:
            self._learn(*self._copying)
        self._copier.submit(self._close_copier_conn).result()
        self._copier.shutdown()
        self._copier = None

    def _close_copier_conn(self) -> None:
        if self._copier_conn is not None:
            self._copier_conn.close()
            self._copier_conn = None

    def _copy_back(self, conn: sqlite3.Connection) -> int:
        """A PASSIVE checkpoint on ``conn``; return the frames the WAL held (0 when it failed)."""
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            logger.debug("checkpoint of %s failed (the next one catches up): %s", self._wal_path, error)
            return 0
        return int(row[1]) if row and row[1] > 0 else 0

    def _sync_wal(self) -> None:
        """Make every frame written so far durable, whatever a checkpoint could copy."""
        try:
            descriptor = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: the frames are in the file, synced by that checkpoint
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# ==== queue snapshot ============================================================================
# Which scenes PlexSync's queue already covers, as of the last row read.
#
# PlexSync never deletes acked rows, so "has a row in the queue" means nothing after months
# of use. An entry is covered when its scene has a *live* job (pending or in progress, any
# age), or an *acked* job enqueued after the end of the second the entry failed in (its data
# is newer). ``failed_at`` is stored in whole seconds, so a job enqueued within that second,
# such as PlexSync's own retry copy put back a moment before the failure, may be the failed
# job itself and never covers. Acked rows enqueued earlier and failed acks never cover. Rows are appended with increasing ids, so the snapshot can be brought up
# to date by reading only the rows after ``last_row_id``.

#: persist-queue's AckStatus values: inited 0, ready 1, unack 2 (a worker holds it).
LIVE_STATUSES = (0, 1, 2)
#: AckStatus.acked: done, kept until somebody clears it (PlexSync never does).
ACKED = 5

#: ``(row id, scene id or None, status, enqueue timestamp)`` of one queue row.
QueueRow = tuple[int, "int | None", int, float]


@dataclass
class QueueSnapshot:
    """Scenes with a live job, and the newest acked job per scene, up to ``last_row_id``.

    Attributes:
        live: Scenes with a pending or in-progress job.
        acked: Scene -> enqueue time (Unix seconds) of its newest acked job that was read.
        last_row_id: The highest queue row id taken into account.
    """

    live: set[int] = field(default_factory=set)
    acked: dict[int, float] = field(default_factory=dict)
    last_row_id: int = 0

    def covering_reason(self, scene_id: int, failed_at: float | None) -> str | None:
        """Why the scene needs no new job for an entry that failed at ``failed_at``, or None.

        An acked job covers only when enqueued at or after the end of the entry's failure
        second (``floor(failed_at) + 1``); an entry whose failure time is unknown is never
        covered by an acked job.
        """
        if scene_id in self.live:
            return f"scene {scene_id} has a pending or in-progress job"
        synced_at = self.acked.get(scene_id)
        if synced_at is not None and failed_at is not None and synced_at >= math.floor(failed_at) + 1:
            return f"scene {scene_id} was synced by a job queued after the entry failed"
        return None

    def absorb(self, rows: Iterable[QueueRow]) -> None:
        """Take rows into account (live ones as live, acked ones by time; failed acks ignored)."""
        for row_id, scene_id, status, timestamp in rows:
            self.last_row_id = max(self.last_row_id, row_id)
            if scene_id is None:
                continue
            if status in LIVE_STATUSES:
                self.live.add(scene_id)
            elif status == ACKED and timestamp > self.acked.get(scene_id, float("-inf")):
                self.acked[scene_id] = timestamp


def scene_id_of_job(blob: Any) -> int | None:
    """The scene id of a pickled queue job, or None when the row is not a readable job."""
    try:
        return read_scene_id(blob)
    except ValueError:  # UnsafePickleError is one
        return None


def read_scene_id(blob: Any) -> int:
    """The scene id of a pickled queue job, read as every queue row is (``QUEUE_LIMITS``).

    Raises:
        ValueError: The row is not a readable job with a scene id; the message says why.
    """
    job = safe_loads(blob, max_bytes=QUEUE_MAX_PICKLE_BYTES, limits=QUEUE_LIMITS)
    scene_id = job.get("scene_id") if isinstance(job, dict) else None
    if isinstance(scene_id, bool) or not isinstance(scene_id, (int, str)):
        raise ValueError(f"the row holds no job with a scene id (a {type(job).__name__})")
    return int(scene_id)


# ==== queue rows ================================================================================
# Reading persist-queue's table on ``QueueFile``'s connection: row ids, time-ordered search, decoded rows.
#
# Only ``QueueFile`` opens the queue file; these functions work on its connection, as the
# ledger's do.

#: Acked rows are read from this long before the window's start: room for a clock that stepped back.
ACKED_SCAN_MARGIN = 86_400.0
_ACK_FAILED = 9  # persist-queue's AckStatus.ack_failed: never a job to cover anything


def high_water(conn: sqlite3.Connection, table: str) -> int:
    """The highest row id ``table`` has ever given out (AUTOINCREMENT keeps it after deletes)."""
    row = conn.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),"
        f" coalesce((SELECT max(_id) FROM {table}), 0))",
        (table,),
    ).fetchone()
    return int(row[0])


def first_row_since(conn: sqlite3.Connection, table: str, moment: float, high: int) -> int:
    """The first row id whose enqueue time is at least ``moment`` (``high + 1`` if none), by binary search.

    Rows are appended with the time of ``put``, so times grow with ids; a clock that stepped
    back by less than ``ACKED_SCAN_MARGIN`` cannot hide a row from the scan that follows,
    and one that stepped back further can only make a job be sent again.
    """
    probe = f"SELECT _id, timestamp FROM {table} WHERE _id >= ? ORDER BY _id LIMIT 1"
    low, top = 0, high + 1
    while low < top:
        middle = (low + top) // 2
        row = conn.execute(probe, (middle,)).fetchone()
        if row is None or row[0] > high:
            top = middle
        elif (row[1] or 0.0) >= moment:
            top = min(middle, int(row[0]))
        else:
            low = int(row[0]) + 1
    return low


def decoded(rows: Iterator[tuple[Any, ...]]) -> Iterator[QueueRow]:
    """``(row id, scene id or None, status, time)`` of each ``(_id, data, status, timestamp)`` row."""
    for row_id, blob, status, timestamp in rows:
        scene_id = scene_id_of_job(blob)
        if scene_id is None and status != _ACK_FAILED:
            logger.warning("queue row %s is not a readable job; ignored for de-duplication", row_id)
        yield int(row_id), scene_id, int(status), float(timestamp or 0.0)


# ==== staged jobs ===============================================================================
# A job that passed every gate, as the writers stage it for the queue, and the ledger records a chunk writes.

class PendingJob(NamedTuple):
    """A job that passed every gate, with the entry it comes from."""

    entry: Mapping[str, Any]
    identity: tuple[int, str]
    failed_at: float | None
    scene_id: int
    update_type: str
    data: Any
    #: Later entries of the same chunk for the same scene: they share this job's fate.
    followers: tuple[tuple[Mapping[str, Any], tuple[int, str]], ...] = ()


class StagedJob(NamedTuple):
    """A job ready to be written: its entry, scene, pickled row data and job id."""

    identity: tuple[int, str]
    failed_at: float | None
    scene_id: int
    job_id: int
    blob: bytes
    #: Entries of the same chunk for the same scene, recorded as covered by this job.
    followers: tuple[tuple[int, str], ...] = ()


def chunk_records(
    jobs: Sequence[StagedJob],
    covered: Sequence[tuple[tuple[int, str], int]],
    fresh: dict[int, tuple[int, int]],
    earlier: Mapping[int, tuple[int, int]],
    run_id: str,
    now: float,
) -> list[tuple[Any, ...]]:
    """The chunk's ledger records, as rows in ``LedgerRecord``'s field order: each entry points at its scene's job of this run, if any.

    ``fresh`` holds the jobs this chunk wrote, ``earlier`` those of earlier chunks (by scene);
    a job found covered inside the transaction points at this run's job of its scene too, if any.
    Plain tuples, not ``LedgerRecord``s: they are built while PlexSync's queue is locked.
    """

    def pointer(scene_id: int) -> tuple[int | None, int | None]:
        return fresh.get(scene_id) or earlier.get(scene_id) or (None, None)

    entries = [(identity, job.scene_id) for job in jobs for identity in (job.identity, *job.followers)]
    entries.extend(covered)
    return [(*identity, scene_id, *pointer(scene_id), run_id, now, DONE, None) for identity, scene_id in entries]


# ==== lock budget ===============================================================================
# How many DLQ entries one chunk takes: sized by time on the queue's write lock, not by count.
#
# Each chunk's jobs and ledger records are written in one transaction, and while it holds
# the queue file's write lock PlexSync's worker cannot take or ack a job. The worker does not
# queue for the lock: SQLite's busy handler sleeps and looks again after 1, 3, 8, 18, 33, 53 ms
# and so on, so a transaction of 20 ms can cost it 33. Cutting one chunk's write into several
# transactions back to back does not help (measured: its waits grew, as each part finds the
# worker asleep and the next part takes the lock before it looks); what helps is a short
# transaction followed by a long gap, which the screening of the next chunk provides. So a
# chunk is as large as fits ``TARGET_SECONDS`` at the cost per entry measured so far, up to
# the engine's usual chunk: on a fast disk every chunk keeps that size; on a slow disk, a
# busy machine or with large jobs, chunks shrink.

#: What one chunk's transaction should hold the write lock for. PlexSync's worker may wait
#: the next look of its busy handler after it (33 ms for up to 33) plus its own ``get``
#: (~20 ms once months of acked rows pile up): about 50 ms in all. A 10 ms target was tried
#: (``bench --entries 100000 --paths batched --live-worker``, 4 runs each, interleaved):
#: the worker's longest waits were 40-62 ms against 38-60 ms at 25 ms, since its longest
#: waits come from CPU contention and its own ``get``, not from the chunk's size.
TARGET_SECONDS = 0.025
#: Never fewer entries a chunk: each transaction also costs ~1 ms of its own (begin, the
#: rows appended since the last chunk, commit), and each chunk one Stash request or more.
MIN_ROWS = 100
#: Weight of the newest transaction in the running cost of an entry.
_NEWEST_WEIGHT = 0.3


class LockBudget:
    """The running cost of one entry written under the queue's write lock, and the entries that fit the target.

    Args:
        target_seconds: What one transaction should hold the lock for.
        min_rows: The fewest entries a chunk is given, however dear they get.
    """

    def __init__(self, target_seconds: float = TARGET_SECONDS, *, min_rows: int = MIN_ROWS) -> None:
        if not target_seconds > 0 or min_rows < 1:
            raise ValueError(f"a lock budget needs a positive target and row count, got {target_seconds!r}, {min_rows!r}")
        self.target_seconds = target_seconds
        self.min_rows = min_rows
        self.seconds_per_row: float | None = None

    def rows(self) -> int | None:
        """Entries the next chunk may hold; None before any transaction was timed (no limit yet)."""
        if self.seconds_per_row is None:
            return None
        return max(self.min_rows, round(self.target_seconds / self.seconds_per_row))

    def observe(self, rows: int, seconds: float) -> None:
        """Learn from a transaction that recorded ``rows`` entries in the ledger in ``seconds``.

        ``seconds`` runs from asking for the lock to committing, so a wait for PlexSync's own
        lock counts (a busy worker makes the chunks smaller too), while work done before
        asking (encoding, reading the run's earlier jobs) and after committing does not.
        """
        if rows <= 0 or seconds <= 0:
            return
        cost = seconds / rows
        previous = self.seconds_per_row
        self.seconds_per_row = cost if previous is None else previous + _NEWEST_WEIGHT * (cost - previous)


# ==== queue file ================================================================================
# ``QueueFile``: the one owner of PlexSync's queue file, ``<data_dir>/queue/data.db``.
#
# It answers "which scenes are already covered" (live and recently acked jobs), keeps the
# redrive ledger beside persist-queue's table, and writes a chunk of recovered jobs plus
# their ledger records in one short transaction, deciding inside that transaction, against
# every row the queue holds at that moment, whether a scene gained a job meanwhile.
#
# Reads never create a file: ``mode=rw`` (SQLite removes its WAL files on close); no file reads as an empty queue.

QUEUE_FILE_NAME = "data.db"
#: Acked rows are read from this long before the window's start: room for a clock that stepped back.
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
        #: ``(run id, highest scene)`` of the jobs the last run that wrote here queued: only
        #: scenes up to it can have one of that run's jobs, so a run read in scene order asks
        #: the ledger about one scene a chunk at most (the one its last chunk ended on).
        self._run_top_scene: tuple[str, int] = ("", 0)

    def session(self) -> ContextManager[None]:
        """Let a run's per-chunk ledger reads and chunk writes share one connection (``QueueSession``)."""
        return self._session.running()

    def checkpoint(self) -> None:
        """After a chunk: copy its pages into the file with no lock held (see ``QueueSession``)."""
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
            high = high_water(conn, self.table)
            select = f"SELECT _id, data, status, timestamp FROM {self.table} WHERE _id <= ? AND "
            if live:  # statuses 0, 1 and 2 (persist-queue's AckStatus); "< 3" is the quickest test
                snapshot.absorb(decoded(conn.execute(select + f"status < {max(LIVE_STATUSES) + 1}", (high,))))
            if acked:
                start = 0 if since is None else first_row_since(conn, self.table, since - ACKED_SCAN_MARGIN, high)
                sql = select + f"_id >= ? AND status = {ACKED} AND timestamp >= ?"
                snapshot.absorb(decoded(conn.execute(sql, (high, start, since or 0.0))))
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
            return high_water(conn, self.table) if self._has_table(conn, self.table) else 0
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
                snapshot.absorb(decoded(conn.execute(sql, (snapshot.last_row_id,))))
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
            return read_records(conn, entries)
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
            return all_records(conn)
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
            for _, scene_id, status, _ in decoded(rows):
                present += 1
                if scene_id == record.scene_id and status != 9:
                    return "queued"
            return "absent" if high_water(conn, self.table) - record.claim_seq == present else "unknown"
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
        self._session.before_write()
        failed, collecting = True, gc.isenabled()
        gc.disable()  # a full collection inside the transaction would hold PlexSync's worker off for it
        try:
            scenes = self._scenes_with_earlier_jobs(run_id, [job.scene_id for job in jobs] + [scene for _, scene in covered])
            ready = conn is self._ledger_ready_on  # the session made sure of the ledger already
            earlier = run_jobs(conn, run_id, scenes) if ready else {}  # only this run writes ``run_id``: no lock
            asked = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            locked = time.perf_counter()
            if not ready:
                ensure_ledger(conn)
                earlier = run_jobs(conn, run_id, scenes)
            self.refresh(snapshot, conn)
            reasons = [_BY_THIS_RUN.format(job.scene_id) if job.scene_id in earlier
                       else snapshot.covering_reason(job.scene_id, job.failed_at) for job in jobs]
            now = time.time()
            fresh = self._insert_jobs(conn, [job for job, reason in zip(jobs, reasons) if reason is None], now)
            write_records(conn, chunk_records(jobs, covered, fresh, earlier, run_id, now))
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
        if fresh:
            top = max(fresh)
            self._run_top_scene = (run_id, max(top, self._run_top_scene[1]) if self._run_top_scene[0] == run_id else top)
        return reasons

    def _scenes_with_earlier_jobs(self, run_id: str, scenes: list[int]) -> list[int]:
        """The scenes of ``scenes`` that run ``run_id`` may already have queued a job for (see ``_run_top_scene``)."""
        last_run, top = self._run_top_scene
        if last_run != run_id:
            return []
        return [scene for scene in scenes if scene <= top]

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
            ensure_ledger(conn)
            write_record(conn, record)
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
                f"DELETE FROM {LEDGER_TABLE} WHERE scene_id = ? AND dlq_id = ? AND failed_at = ? AND state = ?",
                (scene_id, *identity, CLAIMED),
            )
        except sqlite3.Error as error:
            raise self._error("cannot write the ledger in", error) from error
        finally:
            conn.close()

    def ledger_tables(self) -> dict[str, int]:
        """The plugin's own tables in the queue file (the ledger, and one of the first layout) and their rows.

        Read only; an absent file or table is simply not listed.
        """
        if not self.db_path.exists():
            return {}
        conn = sqlite3.connect(sqlite_uri(self.db_path, "ro"), uri=True, timeout=self.timeout)
        try:
            return {table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                    for table in (LEDGER_TABLE, LEGACY_TABLE) if self._has_table(conn, table)}
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from error
        finally:
            conn.close()

    def drop_ledger(self) -> list[str]:
        """Remove the plugin's own tables from the queue file, in one transaction; return the tables removed.

        PlexSync's rows stay as they are (the file is never vacuumed). Callers hold the
        recovery lock, so no recovery is writing the ledger meanwhile.

        Raises:
            QueueFileError: The file could not be written (it is left as it was).
        """
        if not self.db_path.exists():
            return []
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            dropped = [table for table in (LEDGER_TABLE, LEGACY_TABLE) if self._has_table(conn, table)]
            for table in dropped:
                conn.execute(f"DROP TABLE {table}")
            conn.execute("COMMIT")
            return dropped
        except sqlite3.Error as error:
            raise self._error("cannot remove the ledger from", error) from self._rolled_back(conn, error)
        finally:
            conn.close()


# ==== operations ================================================================================
# The live job queue PlexSync's worker drains: creating jobs and seeing what is already queued.
#
# Where PlexSync keeps its own ``sync_queue/operations.py``, so a PlexSync developer finds it here.
#
# The queue is a ``persistqueue.SQLiteAckQueue`` in ``<data_dir>/queue`` (file ``data.db``,
# table ``ack_queue_default``), read and written exactly as PlexSync does.

QUEUE_DIR_NAME = "queue"
QUEUE_TABLE = "ack_queue_default"

#: Job ids count up from the microsecond this process started, so two processes do not share them.
_job_ids = itertools.count(time.time_ns() // 1000)
_job_ids_lock = threading.Lock()


def _restart_job_ids() -> None:
    """In a forked child: count from the fork's microsecond, as a freshly started process would.

    Without it every child forked from one parent (a pre-forking server that imported the
    plugin first) would hand out the parent's next ids, the same ones in each child.
    """
    global _job_ids, _job_ids_lock
    _job_ids, _job_ids_lock = itertools.count(time.time_ns() // 1000), threading.Lock()


os.register_at_fork(after_in_child=_restart_job_ids)


def _next_job_id() -> int:
    with _job_ids_lock:
        return next(_job_ids)


def make_job(scene_id: int, update_type: str, data: Any, *, now: float | None = None) -> dict[str, Any]:
    """Build a job dict in PlexSync's format.

    Args:
        scene_id: The Stash scene the job syncs.
        update_type: PlexSync's kind of update (``"metadata"``, ...).
        data: The job's payload, plain values only.
        now: The enqueue time in Unix seconds; now when omitted.

    Returns:
        ``{'job_id', 'scene_id', 'update_type', 'data', 'enqueued_at', 'job_key'}``.
    """
    return {
        "job_id": _next_job_id(),
        "scene_id": scene_id,
        "update_type": update_type,
        "data": data,
        "enqueued_at": time.time() if now is None else now,
        "job_key": f"scene_{scene_id}",
    }


def open_queue(data_dir: str | Path, *, multithreading: bool = True, timeout: float = 30.0) -> SQLiteAckQueue:
    """Open PlexSync's queue in ``data_dir`` the way PlexSync does (no auto-resume of unacked rows).

    ``multithreading=True`` lets the plugin use it from the thread that sends ``outage_ended``;
    the larger ``timeout`` is persist-queue's advice against "database is locked".
    """
    return SQLiteAckQueue(
        str(Path(data_dir) / QUEUE_DIR_NAME), auto_resume=False, multithreading=multithreading, timeout=timeout
    )


def enqueue(queue: SQLiteAckQueue, scene_id: int, update_type: str, data: Any) -> dict[str, Any]:
    """Put one job on the queue and return the job dict that was queued."""
    job = make_job(scene_id, update_type, data)
    queue.put(job)
    logger.debug("queued %s (%s)", job["job_key"], update_type)
    return job


def get_queued_scene_ids(queue_path: str | Path) -> set[int]:
    """Return the scene ids that have a pending or in-progress job (any age).

    Acked rows are not "queued": PlexSync keeps them for ever. Whether an acked job covers a
    DLQ entry depends on when it was enqueued; see ``get_acked_scene_times``.

    Args:
        queue_path: The queue directory (``queue.path``).

    Returns:
        Scene ids found; an absent queue file gives an empty set. Rows that do not decode
        to a job with a scene id are skipped (and logged), never executed.
    """
    return QueueFile(queue_path).snapshot(None, acked=False).live


def get_acked_scene_times(queue_path: str | Path, since: float | None) -> dict[int, float]:
    """Return scene id -> enqueue time of its newest acked job enqueued at or after ``since``.

    ``since`` bounds the read (rows enqueued earlier are not even decoded); None reads all.
    """
    return QueueFile(queue_path).snapshot(since, live=False).acked
