"""Which scenes PlexSync's queue already covers, as of the last row read.

PlexSync never deletes acked rows, so "has a row in the queue" means nothing after months
of use. An entry is covered when its scene has a *live* job (pending or in progress, any
age), or an *acked* job enqueued after the end of the second the entry failed in (its data
is newer). ``failed_at`` is stored in whole seconds, so a job enqueued within that second,
such as PlexSync's own retry copy put back a moment before the failure, may be the failed
job itself and never covers. Acked rows enqueued earlier and failed acks never cover. Rows are appended with increasing ids, so the snapshot can be brought up
to date by reading only the rows after ``last_row_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from .safe_pickle import QUEUE_LIMITS
from .safe_pickle import QUEUE_MAX_PICKLE_BYTES, safe_loads

__all__ = ["ACKED", "LIVE_STATUSES", "QueueSnapshot", "QueueRow", "read_scene_id", "scene_id_of_job"]

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
