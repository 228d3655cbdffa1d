"""The bench's data: a PlexSync data directory shaped like a real one after a library-wide outage.

Why: a "Sync all" during an outage dead-letters tens of thousands of jobs; timing a recovery
needs such a DLQ in seconds, and one that looks like PlexSync's after months of use:

* ``dlq.db`` in PlexSync's schema with only its own indexes
  (:class:`~.plexsync_data.PlexSyncData`), rows in failure order (ids grow with
  ``failed_at``, as PlexSync appends them), optionally a million of them over a year with the
  window holding only some;
* scene ids **scattered** relative to failure order (a fixed-seed permutation): a queue
  fails scenes in whatever order it held them, not by id;
* a queue (``SQLiteAckQueue``'s own schema) holding a long acked history before the window,
  in the rows persist-queue writes, plus pending jobs for a share of the scenes.

:mod:`.bench` times recoveries over it.
"""

from __future__ import annotations

import pickle
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from persistqueue.serializers import pickle as queue_pickle

from ..sync_queue.dlq import DLQ_FILE_NAME
from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, open_queue
from .plexsync_data import PlexSyncData, plexsync_timestamp

__all__ = [
    "ACKED_HISTORY", "SCATTER_SEED", "WINDOW_SECONDS", "WINDOW_START", "Dataset", "build_data_dir", "failure_order",
]

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
