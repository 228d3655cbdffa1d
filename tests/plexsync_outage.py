"""DLQ and queue data shaped as PlexSync's worker (Stash2Plex v1.6.14) writes them during an outage.

Shared by the library and command-line tests of what a recovery does with a real outage's DLQ.
"""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

from persistqueue.serializers import pickle as queue_pickle

from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_END, WINDOW_START

#: A scene id that fits 64 bits unsigned but not SQLite's signed INTEGER.
POISON_SCENE = 9999999999999999999
#: A second outage, an hour after the first.
LATER_START, LATER_END = WINDOW_END + 3600, WINDOW_END + 5400

#: ``PlexTemporaryError`` messages as PlexSync's ``translate_plex_exception`` words what requests raises.
TIMEOUT = "Timeout error: HTTPConnectionPool(host='plex.local', port=32400): Read timed out. (read timeout=30)"
ABORTED = ("Connection error: ('Connection aborted.', RemoteDisconnected('Remote end closed connection"
           " without response'))")
UNAVAILABLE = "Server error (503): 503 Server Error: Service Unavailable for url: http://plex.local:32400/library/sections"
BAD_GATEWAY = "Server error (502): 502 Server Error: Bad Gateway for url: http://plex.local:32400/library/sections"
RATE_LIMITED = "Server error (429): 429 Client Error: Too Many Requests for url: http://plex.local:32400/library/sections"
NOT_FOUND = "Item not found in Plex: (404) not_found; http://plex.local:32400/library/metadata/7"
BAD_REQUEST = "Bad request to Plex: (400) bad_request; http://plex.local:32400/library/metadata/8"

#: What PlexSync's worker dead-letters during an outage (its breaker open, Plex restarting):
#: ``(scene, error_type, error_message)``; the first seven are the outage's casualties.
OUTAGE_DLQ = [
    (1, "PlexTemporaryError", TIMEOUT),
    (2, "PlexTemporaryError", TIMEOUT),
    (3, "PlexTemporaryError", UNAVAILABLE),
    (4, "PlexTemporaryError", BAD_GATEWAY),
    (5, "PlexTemporaryError", ABORTED),
    (6, "PlexTemporaryError", UNAVAILABLE),
    (7, "PlexTemporaryError", TIMEOUT),
    (8, "PlexTemporaryError", RATE_LIMITED),
    (9, "PlexNotFound", NOT_FOUND),
    (10, "PlexPermanentError", BAD_REQUEST),
]


def worker_job(scene_id: int, title: str = "", **data: Any) -> dict[str, Any]:
    """A job as PlexSync's worker dead-letters it: retry metadata added by ``_prepare_for_retry``."""
    job = make_job(scene_id, "metadata", {"title": title or f"Scene {scene_id}", **data})
    return {**job, "retry_count": 5, "next_retry_at": 0.0, "last_error_type": "PlexTemporaryError"}


def big_job_pickle(scene_id: int) -> bytes:
    """A DLQ job of 6,033 opcodes: 6,000 tags, written without MEMOIZE (``pickletools.optimize``).

    Re-queued as persist-queue pickles it (protocol 4, a MEMOIZE after each string) it is 12,045.
    """
    job = make_job(scene_id, "metadata", {"tags": [f"tag {index}" for index in range(6000)]})
    blob = pickletools.optimize(pickle.dumps(job, protocol=4))
    assert sum(1 for _ in pickletools.genops(blob)) == 6033
    assert sum(1 for _ in pickletools.genops(queue_pickle.dumps(job))) == 12045
    return blob


def add_outage_dlq(plexsync: PlexSyncData) -> None:
    """Dead-letter ``OUTAGE_DLQ`` inside the test window, as PlexSync's worker does (after 5 retries)."""
    plexsync.add_dead_letters(
        {"job": worker_job(scene_id), "error_type": error_type, "error_message": message, "retry_count": 5,
         "failed_at": WINDOW_START + 60 + scene_id}
        for scene_id, error_type, message in OUTAGE_DLQ
    )


def add_same_second_copies(plexsync: PlexSyncData) -> None:
    """Ten entries with an acked job each: five acked copies from the failure's own second, five later syncs.

    PlexSync's worker acks a failing job and puts back a retry copy; when the copy fails it is
    dead-lettered. Scenes 1-5: the copy was enqueued 0.3 s before its failure, in the second
    ``failed_at`` keeps (whole seconds). Scenes 6-10: a job enqueued in the next second synced it.
    """
    for scene_id in range(1, 11):
        failed_at = WINDOW_START + 100 * scene_id
        plexsync.add_dead_letter(worker_job(scene_id), failed_at=failed_at)
        enqueued = failed_at + 0.5 if scene_id <= 5 else failed_at + 1.2  # the failure was at +0.8
        plexsync.queue_jobs([worker_job(scene_id)], status="acked", timestamp=enqueued)


def add_two_edits(plexsync: PlexSyncData) -> None:
    """Scene 3: an "older edit" and a "newer edit" (dead-lettered later, lower DLQ id); scene 4: two in one second."""
    newer = plexsync.add_dead_letter(worker_job(3, "newer edit"), failed_at=WINDOW_START + 20)
    older = plexsync.add_dead_letter(worker_job(3, "older edit"), failed_at=WINDOW_START + 10)
    assert newer < older  # ids are not times
    plexsync.add_dead_letter(worker_job(4, "first of the second"), failed_at=WINDOW_START + 30)
    plexsync.add_dead_letter(worker_job(4, "last of the second"), failed_at=WINDOW_START + 30)  # higher id: newer
