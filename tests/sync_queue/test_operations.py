"""The live queue: PlexSync's job format, and which scenes count as already queued."""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from persistqueue import SQLiteAckQueue

from plexsync_recovery_plugin.sync_queue.operations import (
    enqueue,
    get_acked_scene_times,
    get_queued_scene_ids,
    make_job,
)

REPO = Path(__file__).resolve().parents[2]


def test_job_has_plexsyncs_keys():
    job = make_job(7, "metadata", {"title": "T"}, now=123.5)
    assert set(job) == {"job_id", "scene_id", "update_type", "data", "enqueued_at", "job_key"}
    assert (job["scene_id"], job["update_type"], job["data"], job["enqueued_at"], job["job_key"]) == (
        7, "metadata", {"title": "T"}, 123.5, "scene_7",
    )
    assert make_job(7, "metadata", {})["job_id"] != make_job(7, "metadata", {})["job_id"]


_FORKING_PARENT = """
import os
from plexsync_recovery_plugin.sync_queue.operations import make_job
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        print(make_job(7, "metadata", {})["job_id"], flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_children_forked_from_one_parent_give_out_their_own_job_ids():
    """A pre-forking server imports the plugin once, then forks workers: each worker's ids are its own."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", _FORKING_PARENT], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split()
    assert first != second


def test_pending_and_in_progress_are_queued_but_acked_and_failed_acks_are_not(queue):
    for scene_id in (1, 2, 3, 4, 5):
        enqueue(queue, scene_id, "metadata", {})
    taken = [queue.get(block=False) for _ in range(4)]  # scenes 1-4 in progress
    queue.ack(taken[0])  # 1: done; PlexSync keeps the row for ever
    queue.ack_failed(taken[1])  # 2: failed for good, no longer queued
    queue.nack(taken[2])  # 3: back to ready
    assert get_queued_scene_ids(queue.path) == {3, 4, 5}
    acked = get_acked_scene_times(queue.path, None)
    assert list(acked) == [1] and abs(acked[1] - time.time()) < 60


def test_acked_jobs_are_read_only_from_the_bound_on(queue, data_dir):
    enqueue(queue, 1, "metadata", {})
    enqueue(queue, 2, "metadata", {})
    for _ in range(2):
        queue.ack(queue.get(block=False))
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:  # scene 1's job was enqueued long ago, scene 2's just now
        conn.execute("UPDATE ack_queue_default SET timestamp = 1000 WHERE _id = 1")
    conn.close()
    assert get_acked_scene_times(queue.path, 2000.0).keys() == {2}
    assert get_acked_scene_times(queue.path, 1000.0).keys() == {1, 2}


def test_cleared_acked_rows_are_no_longer_queued(queue):
    enqueue(queue, 1, "metadata", {})
    queue.ack(queue.get(block=False))
    queue.clear_acked_data(keep_latest=0)
    assert get_queued_scene_ids(queue.path) == set()
    assert get_acked_scene_times(queue.path, None) == {}


def test_missing_queue_is_empty(tmp_path):
    assert get_queued_scene_ids(tmp_path / "nowhere") == set()


def test_unreadable_rows_are_skipped_not_run(data_dir, queue, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:  # rows as a tampered or corrupt queue would hold them
        conn.execute("INSERT INTO ack_queue_default (data, timestamp, status) VALUES (?, 0, 0)", (pickle.dumps(Evil()),))
        conn.execute("INSERT INTO ack_queue_default (data, timestamp, status) VALUES (?, 0, 0)", (b"garbage",))
    conn.close()
    enqueue(queue, 9, "metadata", {})
    assert get_queued_scene_ids(queue.path) == {9}
    assert not marker.exists()


def test_what_enqueue_writes_is_read_by_a_plain_queue(data_dir, queue):
    enqueue(queue, 5, "image", {"url": "x"})
    fresh = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False)
    try:
        job = fresh.get(block=False)
    finally:
        fresh.close()
    assert (job["scene_id"], job["update_type"], job["data"], job["job_key"]) == (5, "image", {"url": "x"}, "scene_5")


def test_data_dir_names_with_uri_characters_are_read_correctly(tmp_path):
    from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
    from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
    from plexsync_recovery_plugin.sync_queue.operations import QueueFile, open_queue

    data_dir = tmp_path / "plex#2?x=%20y"
    queue = open_queue(data_dir)
    try:
        enqueue(queue, 7, "metadata", {})
        assert get_queued_scene_ids(queue.path) == {7}
        assert QueueFile(queue.path).ledger_records([(1, (1, "x"))]) == {}
    finally:
        queue.close()
    PlexSyncData(data_dir).add_dead_letter(make_job(7, "metadata", {}), error_type="ValueError", retry_count=1)
    assert DeadLetterQueue(data_dir).get_count() == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plex#2?x=%20y"]  # no stray file beside it
