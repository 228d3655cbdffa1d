"""The live job queue PlexSync's worker drains: creating jobs and seeing what is already queued.

Where PlexSync keeps its own ``sync_queue/operations.py``, so a PlexSync developer finds it here.

The queue is a ``persistqueue.SQLiteAckQueue`` in ``<data_dir>/queue`` (file ``data.db``,
table ``ack_queue_default``), read and written exactly as PlexSync does.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from persistqueue import SQLiteAckQueue

from .queue_file import QUEUE_FILE_NAME, QueueFile

__all__ = [
    "QUEUE_DIR_NAME",
    "QUEUE_FILE_NAME",
    "QUEUE_TABLE",
    "enqueue",
    "get_acked_scene_times",
    "get_queued_scene_ids",
    "make_job",
    "open_queue",
]

logger = logging.getLogger(__name__)

QUEUE_DIR_NAME = "queue"
QUEUE_TABLE = "ack_queue_default"

_job_ids = itertools.count(time.time_ns() // 1000)
_job_ids_lock = threading.Lock()


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
