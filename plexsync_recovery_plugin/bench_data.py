"""The bench's data: a PlexSync data directory with a library-sized DLQ, written quickly.

Why: a "Sync all" during an outage dead-letters tens of thousands of jobs; timing a recovery
needs such a DLQ in seconds. The DLQ is written in PlexSync's real schema with one
``executemany`` of pre-pickled jobs (:class:`~.testing.plexsync_data.PlexSyncData`), the
queue's schema by ``SQLiteAckQueue`` itself. :mod:`.bench` times recoveries over it.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .sync_queue.dlq import DLQ_FILE_NAME
from .sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, open_queue
from .testing.plexsync_data import PlexSyncData, plexsync_timestamp

__all__ = ["WINDOW_SECONDS", "WINDOW_START", "Dataset", "build_data_dir"]

#: The bench's outage: 2026-02-15 19:00:00 .. 19:30:00 UTC (failed_at has whole seconds).
WINDOW_START = 1771182000.0
WINDOW_SECONDS = 1800
#: One scene in ten is deleted from Stash, another one in ten is already queued.
_DELETED_REMAINDER = 0
_QUEUED_REMAINDER = 5
#: Noise entries: outside the window, or inside it with a type the default run skips.
_NOISE_TYPES = ("PlexAuthError", "PlexTemporaryError", "PlexNotFound", "PlexPermanentError")
_STACK = "Traceback (most recent call last):\n  ...\nPlexServerDown: Plex did not answer\n"
_BASE_JOB_ID = 1_700_000_000_000_000


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
    """

    entries: int
    noise: int
    deleted: int
    queued: int
    start: float
    end: float

    def stash_scene_ids(self) -> Iterator[int]:
        """Yield the ids of the scenes Stash has: every in-window scene except the deleted ones."""
        return (scene_id for scene_id in range(1, self.entries + 1) if not _is_deleted(scene_id))


def _is_deleted(scene_id: int) -> bool:
    return scene_id % 10 == _DELETED_REMAINDER


def _is_queued(scene_id: int) -> bool:
    return scene_id % 10 == _QUEUED_REMAINDER


def _dlq_rows(entries: int, noise: int) -> Iterator[tuple[Any, ...]]:
    """DLQ rows in insertion order: window entries spread over the window, noise between them.

    ``failed_at`` is whole seconds, so a large window has many equal values (as PlexSync's
    ``CURRENT_TIMESTAMP`` gives): the pager must break those ties by ``id``.
    """
    noise_per_entry = noise / entries if entries else 0.0
    emitted_noise = 0
    for index in range(entries):
        scene_id = index + 1
        failed_at = WINDOW_START + (index * WINDOW_SECONDS) // max(entries, 1)
        job = {
            "job_id": _BASE_JOB_ID + scene_id,
            "scene_id": scene_id,
            "update_type": "metadata",
            "data": {"title": f"Scene {scene_id}", "studio": "Bench Studio", "rating100": scene_id % 100},
            "enqueued_at": failed_at - 30.0,
            "job_key": f"scene_{scene_id}",
        }
        yield (job["job_id"], scene_id, pickle.dumps(job), "PlexServerDown", "Plex did not answer",
               _STACK, 3, plexsync_timestamp(failed_at))
        due = int((index + 1) * noise_per_entry)
        while emitted_noise < due:
            yield _noise_row(emitted_noise, entries)
            emitted_noise += 1
    while emitted_noise < noise:
        yield _noise_row(emitted_noise, entries)
        emitted_noise += 1


def _noise_row(index: int, entries: int) -> tuple[Any, ...]:
    scene_id = entries + index + 1
    kind = index % 3
    if kind == 0:  # before the window
        failed_at, error_type = WINDOW_START - 1 - (index % 86_400), "PlexServerDown"
    elif kind == 1:  # after the window
        failed_at, error_type = WINDOW_START + WINDOW_SECONDS + 1 + (index % 86_400), "PlexServerDown"
    else:  # inside, but of a type the default run does not recover
        failed_at = WINDOW_START + index % (WINDOW_SECONDS + 1)
        error_type = _NOISE_TYPES[index % len(_NOISE_TYPES)]
    job = {"job_id": _BASE_JOB_ID + scene_id, "scene_id": scene_id, "update_type": "metadata",
           "data": {"title": f"Scene {scene_id}"}, "enqueued_at": failed_at - 30.0, "job_key": f"scene_{scene_id}"}
    return (job["job_id"], scene_id, pickle.dumps(job), error_type, "boom", _STACK, 3, plexsync_timestamp(failed_at))


def build_data_dir(data_dir: str | Path, entries: int, *, noise: int | None = None) -> Dataset:
    """Write a PlexSync data directory holding a DLQ of ``entries`` in-window entries and a queue.

    The DLQ is written by :class:`~.testing.plexsync_data.PlexSyncData` (PlexSync's schema
    and indexes, one ``executemany``); the queue's schema by ``SQLiteAckQueue`` itself.
    Scenes ``1..entries`` each have one in-window ``PlexServerDown`` entry; every tenth scene
    (``id % 10 == 0``) is meant to be deleted from Stash, and every tenth (``id % 10 == 5``)
    is already queued, as ``put`` would have.

    Args:
        data_dir: Directory to fill (created if needed); must not hold a DLQ yet.
        entries: In-window ``PlexServerDown`` entries.
        noise: Entries outside the window or of other types; ``entries`` when None.

    Returns:
        The description of what was written.

    Raises:
        ValueError: ``entries`` or ``noise`` is negative, or the directory already has a DLQ.
    """
    noise = entries if noise is None else noise
    if entries < 0 or noise < 0:
        raise ValueError(f"entries and noise must not be negative, got {entries!r} and {noise!r}")
    data_dir = Path(data_dir)
    if (data_dir / DLQ_FILE_NAME).exists():
        raise ValueError(f"{data_dir} already holds a DLQ; the bench needs a fresh directory")
    PlexSyncData(data_dir).insert_dead_letter_rows(_dlq_rows(entries, noise))  # PlexSync's schema and rows

    queued_ids = [scene_id for scene_id in range(1, entries + 1) if _is_queued(scene_id)]
    _write_queued_jobs(data_dir, queued_ids)
    deleted = sum(1 for scene_id in range(1, entries + 1) if _is_deleted(scene_id))
    return Dataset(entries, noise, deleted, len(queued_ids), WINDOW_START, WINDOW_START + WINDOW_SECONDS)


def _write_queued_jobs(data_dir: Path, scene_ids: list[int]) -> None:
    """Create PlexSync's queue and add one pending job per scene, in the rows ``put`` writes."""
    queue = open_queue(data_dir)  # creates PlexSync's queue file and table
    serializer = queue._serializer
    queue.close()
    now = time.time()
    conn = sqlite3.connect(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME)
    try:
        with conn:
            conn.executemany(
                f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, 0)",
                (
                    (serializer.dumps({"job_id": _BASE_JOB_ID + 10_000_000 + scene_id, "scene_id": scene_id,
                                       "update_type": "metadata", "data": {"title": f"Scene {scene_id}"},
                                       "enqueued_at": now, "job_key": f"scene_{scene_id}"}), now)
                    for scene_id in scene_ids
                ),
            )
    finally:
        conn.close()
