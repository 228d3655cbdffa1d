"""The live job queue PlexSync's worker drains: creating jobs and seeing what is already queued.

The queue is a ``persistqueue.SQLiteAckQueue`` in ``<data_dir>/queue`` (file ``data.db``,
table ``ack_queue_default``), read and written exactly as PlexSync does.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from persistqueue import SQLiteAckQueue

from ..sqlite_uri import sqlite_uri
from .safe_pickle import UnsafePickleError, safe_loads

__all__ = [
    "QUEUE_DIR_NAME",
    "QUEUE_FILE_NAME",
    "QUEUE_TABLE",
    "QUEUED_STATUSES",
    "enqueue",
    "get_queued_scene_ids",
    "make_job",
    "open_queue",
]

logger = logging.getLogger(__name__)

QUEUE_DIR_NAME = "queue"
QUEUE_FILE_NAME = "data.db"
QUEUE_TABLE = "ack_queue_default"

#: persist-queue's AckStatus: inited 0, ready 1, unack 2 (a worker has it), acked 5.
#: Acked rows stay until the worker clears them, so they are the "recently completed" jobs.
QUEUED_STATUSES = (0, 1, 2, 5)

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
    """Return the scene ids of pending, in-progress and recently completed jobs.

    Args:
        queue_path: The queue directory (``queue.path``).

    Returns:
        Scene ids found; an absent queue file gives an empty set. Rows that do not decode
        to a job with a scene id are skipped (and logged), never executed.
    """
    db_file = Path(queue_path) / QUEUE_FILE_NAME
    if not db_file.exists():
        return set()
    conn = sqlite3.connect(sqlite_uri(db_file, "ro"), uri=True, timeout=30.0)
    try:
        try:
            rows = conn.execute(
                f"SELECT _id, data FROM {QUEUE_TABLE} WHERE status IN ({','.join('?' * len(QUEUED_STATUSES))})",
                QUEUED_STATUSES,
            )
            scene_ids: set[int] = set()
            for row_id, blob in rows:
                scene_id = _scene_id_of_row(blob)
                if scene_id is None:
                    logger.warning("queue row %s is not a readable job; ignored for de-duplication", row_id)
                else:
                    scene_ids.add(scene_id)
            return scene_ids
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return set()
            raise
    finally:
        conn.close()


def _scene_id_of_row(blob: Any) -> int | None:
    try:
        job = safe_loads(blob)
    except UnsafePickleError:
        return None
    if not isinstance(job, dict):
        return None
    scene_id = job.get("scene_id")
    if isinstance(scene_id, bool) or not isinstance(scene_id, (int, str)):
        return None
    try:
        return int(scene_id)
    except ValueError:
        return None
