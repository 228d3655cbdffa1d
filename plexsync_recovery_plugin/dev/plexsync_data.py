"""PlexSync data directories written as PlexSync writes them: small ones for tests and the demo, large ones for the bench.

The plugin only reads PlexSync's files; this is the one place that writes them as PlexSync
would: ``dlq.db`` with PlexSync's schema and only its index names, dead letters holding
``pickle.dumps(job)``, queue rows through a real ``persistqueue.SQLiteAckQueue``, and
``outage_history.json`` records. ``build_data_dir`` makes the bench's library-sized one: a
DLQ after a library-wide outage beside months of older rows and a queue holding every
acked job.
"""

from __future__ import annotations

import json
import pickle
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from persistqueue.serializers import pickle as queue_pickle

from ..sync_queue.dlq import DLQ_FILE_NAME
from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, make_job, open_queue

__all__ = ['DLQ_COLUMNS', 'DLQ_SCHEMA', 'PLEXSYNC_DLQ_INDEXES', 'PlexSyncData', 'Stored', 'plexsync_timestamp', 'ACKED_HISTORY', 'SCATTER_SEED', 'WINDOW_SECONDS', 'WINDOW_START', 'Dataset', 'build_data_dir', 'failure_order', 'realistic_jobs']


# ==== plexsync data =============================================================================
# A PlexSync data directory written as PlexSync writes it, for tests, the demo and the benchmark.
#
# The plugin only reads PlexSync's files (``dlq.db`` above all); this is the one place that
# writes them as PlexSync would: ``dlq.db`` with PlexSync's schema and only PlexSync's index
# names, dead letters holding ``pickle.dumps(job)``, queue rows through a real
# ``persistqueue.SQLiteAckQueue``, and ``outage_history.json`` records. It imports no test
# server, so importing it is cheap.

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


# ==== bench data ================================================================================
# The bench's data: a PlexSync data directory shaped like a real one after a library-wide outage.
#
# Why: a "Sync all" during an outage dead-letters tens of thousands of jobs; timing a recovery
# needs such a DLQ in seconds, and one that looks like PlexSync's after months of use:
#
# * ``dlq.db`` in PlexSync's schema with only its own indexes
#   (:class:`~.plexsync_data.PlexSyncData`), rows in failure order (ids grow with
#   ``failed_at``, as PlexSync appends them), optionally a million of them over a year with the
#   window holding only some;
# * scene ids **scattered** relative to failure order (a fixed-seed permutation): a queue
#   fails scenes in whatever order it held them, not by id;
# * a queue (``SQLiteAckQueue``'s own schema) holding a long acked history before the window,
#   in the rows persist-queue writes, plus pending jobs for a share of the scenes.
#
# :mod:`.bench` times recoveries over it.

#: The bench's outage: 2026-02-15 19:00:00 .. 19:30:00 UTC (failed_at has whole seconds).
WINDOW_START = 1771182000.0
WINDOW_SECONDS = 1800
#: Old acked rows in the queue by default (PlexSync never deletes an acked row).
ACKED_HISTORY = 100_000
#: The seed of the permutation that scatters scene ids over the failure order.
SCATTER_SEED = 20260215
#: One scene in ten is deleted from Stash, another one in ten is already queued.
_DELETED_REMAINDER = 0
_QUEUED_REMAINDER = 5
#: Noise entries: a year before the window, the day after it, or inside it with a type the default run skips.
_NOISE_TYPES = ("PlexAuthError", "PlexTemporaryError", "PlexNotFound", "PlexPermanentError")
_STACK = "Traceback (most recent call last):\n  ...\nPlexServerDown: Plex did not answer\n"
_BASE_JOB_ID = 1_700_000_000_000_000
_YEAR = 365 * 86_400
_DAY = 86_400
_HISTORY_SECONDS = 180 * _DAY
_ACKED = 5  # persist-queue's AckStatus.acked


@dataclass(frozen=True)
class Dataset:
    """What :func:`build_data_dir` wrote.

    Attributes:
        entries: In-window ``PlexServerDown`` entries, scenes ``1..entries`` (what a run recovers).
        noise: Entries outside the window or of other error types (to be left alone).
        deleted: How many of those scenes Stash must not have (``id % 10 == 0``).
        queued: How many of those scenes were already queued (``id % 10 == 5``).
        start: Window start, Unix seconds.
        end: Window end, Unix seconds.
        acked_history: Old acked rows in the queue, enqueued before the window.
        scattered: Whether scene ids are a permutation of the failure order (else equal to it).
    """

    entries: int
    noise: int
    deleted: int
    queued: int
    start: float
    end: float
    acked_history: int = 0
    scattered: bool = True

    def stash_scene_ids(self) -> Iterator[int]:
        """Yield the ids of the scenes Stash has: every in-window scene except the deleted ones."""
        return (scene_id for scene_id in range(1, self.entries + 1) if not _is_deleted(scene_id))


def _is_deleted(scene_id: int) -> bool:
    return scene_id % 10 == _DELETED_REMAINDER


def _is_queued(scene_id: int) -> bool:
    return scene_id % 10 == _QUEUED_REMAINDER


def failure_order(entries: int, *, scattered: bool = True, seed: int = SCATTER_SEED) -> list[int]:
    """The scene ids ``1..entries`` in the order they failed: shuffled with ``seed``, or ascending."""
    order = list(range(1, entries + 1))
    if scattered:
        random.Random(seed).shuffle(order)
    return order


#: Words of a scene's details text in :func:`realistic_jobs`.
_WORDS = ("the", "scene", "studio", "performer", "night", "city", "light", "long", "story", "of", "a", "and", "in")


def realistic_jobs(count: int, *, seed: int = SCATTER_SEED) -> list[dict[str, Any]]:
    """``count`` jobs shaped as Stash2Plex's hook enqueues them, half with lists of dicts.

    Each has a title, studio, date, rating and path, 0-2,048 bytes of details, 1-8 performers
    and 3-30 tags. Every other job gives performers, tags and studio as lists of names with
    their ids (strings only); the others as ``{"id", "name"}`` dicts, as Stash's GraphQL
    answers them, whose repeated keys ``pickle`` writes as memo references. What
    ``bench --decode`` times; the same every time for a seed.
    """
    rng = random.Random(seed)
    jobs = []
    for index in range(count):
        scene_id = rng.randint(1, 200_000)
        performers = [(str(rng.randint(1, 9_999)), f"Performer {rng.randint(1, 9_999)}") for _ in range(rng.randint(1, 8))]
        tags = [(str(rng.randint(1, 999)), f"tag-{rng.randint(1, 999)}") for _ in range(rng.randint(3, 30))]
        details = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 400)))[: rng.randint(0, 2_048)]
        data: dict[str, Any] = {"title": f"Scene {scene_id}", "details": details, "date": "2024-01-01",
                                "rating100": rng.randint(0, 100), "path": f"/media/scenes/{scene_id}.mp4"}
        if index % 2:
            data.update(studio="Studio Name", studio_id="12", performers=[name for _, name in performers],
                        performer_ids=[ident for ident, _ in performers], tags=[name for _, name in tags],
                        tag_ids=[ident for ident, _ in tags])
        else:
            data.update(studio={"id": "12", "name": "Studio Name"},
                        performers=[{"id": ident, "name": name} for ident, name in performers],
                        tags=[{"id": ident, "name": name} for ident, name in tags])
        data["poster_url"] = f"http://stash:9999/scene/{scene_id}/screenshot"
        jobs.append(make_job(scene_id, "metadata", data, now=WINDOW_START + index))
    return jobs


def _row(scene_id: int, failed_at: float, error_type: str, title: str) -> tuple[Any, ...]:
    job = {"job_id": _BASE_JOB_ID + scene_id, "scene_id": scene_id, "update_type": "metadata",
           "data": {"title": title, "studio": "Bench Studio", "rating100": scene_id % 100},
           "enqueued_at": failed_at - 30.0, "job_key": f"scene_{scene_id}"}
    return (job["job_id"], scene_id, pickle.dumps(job), error_type, "Plex did not answer", _STACK, 3,
            plexsync_timestamp(failed_at))


def _dlq_rows(order: list[int], noise: int) -> Iterator[tuple[Any, ...]]:
    """DLQ rows in failure order, as PlexSync appends them (ids grow with ``failed_at``).

    Three fifths of the noise failed over the year before the window, one fifth in the day
    after it, one fifth inside it with a type the default run skips (interleaved with the
    window's entries). ``failed_at`` is whole seconds, so a large window has many equal
    values (as PlexSync's ``CURRENT_TIMESTAMP`` gives): the pager must break ties by ``id``.
    """
    entries = len(order)
    inside, after = noise // 5, noise // 5
    before = noise - inside - after
    next_noise = iter(range(entries + 1, entries + noise + 1))
    for index in range(before):
        failed_at = WINDOW_START - _YEAR + (index * (_YEAR - 1)) // before
        yield _row(next(next_noise), failed_at, "PlexServerDown", "Old failure")
    emitted_inside = 0
    for index, scene_id in enumerate(order):
        failed_at = WINDOW_START + (index * WINDOW_SECONDS) // max(entries, 1)
        yield _row(scene_id, failed_at, "PlexServerDown", f"Scene {scene_id}")
        due = (index + 1) * inside // max(entries, 1)
        while emitted_inside < due:
            yield _row(next(next_noise), failed_at, _NOISE_TYPES[emitted_inside % len(_NOISE_TYPES)], "Other error")
            emitted_inside += 1
    for _ in range(emitted_inside, inside):
        yield _row(next(next_noise), WINDOW_START + WINDOW_SECONDS, _NOISE_TYPES[0], "Other error")
    for index in range(after):
        failed_at = WINDOW_START + WINDOW_SECONDS + 1 + (index * _DAY) // after
        yield _row(next(next_noise), failed_at, "PlexServerDown", "Later failure")


def build_data_dir(
    data_dir: str | Path,
    entries: int,
    *,
    noise: int | None = None,
    acked_history: int = 0,
    scattered: bool = True,
    seed: int = SCATTER_SEED,
) -> Dataset:
    """Write a PlexSync data directory holding a DLQ of ``entries`` in-window entries and a queue.

    Scenes ``1..entries`` each have one in-window ``PlexServerDown`` entry, failed in the
    order of :func:`failure_order`; every tenth scene (``id % 10 == 0``) is meant to be
    deleted from Stash, and every tenth (``id % 10 == 5``) is already queued, as ``put``
    would have. The queue also holds ``acked_history`` acked rows enqueued over the 180
    days before the window (they cover nothing: each is older than the entries).

    Args:
        data_dir: Directory to fill (created if needed); must not hold a DLQ yet.
        entries: In-window ``PlexServerDown`` entries.
        noise: Entries outside the window or of other types; ``entries`` when None.
        acked_history: Old acked rows in the queue.
        scattered: Scatter scene ids over the failure order (else scene ``n`` fails ``n``-th).
        seed: The permutation's seed.

    Returns:
        The description of what was written.

    Raises:
        ValueError: A count is negative, or the directory already has a DLQ.
    """
    noise = entries if noise is None else noise
    if entries < 0 or noise < 0 or acked_history < 0:
        raise ValueError(f"entries, noise and acked history must not be negative, got {entries!r},"
                         f" {noise!r} and {acked_history!r}")
    data_dir = Path(data_dir)
    if (data_dir / DLQ_FILE_NAME).exists():
        raise ValueError(f"{data_dir} already holds a DLQ; the bench needs a fresh directory")
    order = failure_order(entries, scattered=scattered, seed=seed)
    PlexSyncData(data_dir).insert_dead_letter_rows(_dlq_rows(order, noise))  # PlexSync's schema and rows
    del order
    queued_ids = [scene_id for scene_id in range(1, entries + 1) if _is_queued(scene_id)]
    _write_queue(data_dir, queued_ids, acked_history, max(entries, 1))
    deleted = sum(1 for scene_id in range(1, entries + 1) if _is_deleted(scene_id))
    return Dataset(entries, noise, deleted, len(queued_ids), WINDOW_START, WINDOW_START + WINDOW_SECONDS,
                   acked_history, scattered)


def _queue_rows(queued_ids: list[int], acked_history: int, scenes: int) -> Iterator[tuple[bytes, float, int]]:
    """The queue's rows in ``_id`` order: the acked history first, then the pending jobs (as ``put`` wrote them)."""
    step = _HISTORY_SECONDS / max(acked_history, 1)
    for index in range(acked_history):
        enqueued = WINDOW_START - _HISTORY_SECONDS + index * step
        scene_id = index * 7919 % scenes + 1  # every scene synced many times over the months
        job = {"job_id": _BASE_JOB_ID + 20_000_000 + index, "scene_id": scene_id, "update_type": "metadata",
               "data": {"title": f"Scene {scene_id}", "tags": ["a", "b"]}, "enqueued_at": enqueued,
               "job_key": f"scene_{scene_id}"}
        yield queue_pickle.dumps(job), enqueued, _ACKED
    now = time.time()
    for scene_id in queued_ids:
        job = {"job_id": _BASE_JOB_ID + 10_000_000 + scene_id, "scene_id": scene_id, "update_type": "metadata",
               "data": {"title": f"Scene {scene_id}"}, "enqueued_at": now, "job_key": f"scene_{scene_id}"}
        yield queue_pickle.dumps(job), now, 0


def _write_queue(data_dir: Path, queued_ids: list[int], acked_history: int, scenes: int) -> None:
    """Create PlexSync's queue (persist-queue's own table) and append its rows with one ``executemany``."""
    open_queue(data_dir).close()  # creates PlexSync's queue file and table
    conn = sqlite3.connect(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME)
    try:
        with conn:
            conn.executemany(f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, ?)",
                             _queue_rows(queued_ids, acked_history, scenes))
    finally:
        conn.close()
