"""The persist-queue internals the batch writer relies on: a failing test here means an upgrade changed them.

``QueueFile`` inserts ``SQLiteAckQueue.put``'s exact rows (pickle protocol of
``persistqueue.serializers.pickle``, status 0, float timestamp) and then wakes a worker of
the same process blocked in ``get()`` through ``total`` and ``put_event``. setup.cfg pins
the versions tested; these checks guard a change of that pin.
"""

from __future__ import annotations

import threading

from persistqueue import SQLiteAckQueue

from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from plexsync_recovery_plugin.sync_queue.dlq_recovery import recover_outage_jobs
from tests.conftest import WINDOW_END, WINDOW_START
from tests.fakes import HealthyPlex, PlainStash


def test_a_worker_blocked_in_get_is_woken_by_a_batch_write(dlq, queue, data_dir, add_entry):
    add_entry(3)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get(block=True, timeout=10)))
    waiter.start()
    stash = PlainStash()
    result = recover_outage_jobs(DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"]), queue, stash,
                                 HealthyPlex(), data_dir, collaborators=default_collaborators(queue.path, queue, stash))
    waiter.join(10)
    assert result.recovered == 1
    assert [job["scene_id"] for job in got] == [3]  # type: ignore[index]
    assert queue.qsize() == 0  # ``total`` was kept right: the worker took the one job


def test_the_rows_written_are_those_put_writes(data_dir, dlq, queue, add_entry):
    add_entry(5)
    stash = PlainStash()
    recover_outage_jobs(DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"]), queue, stash, HealthyPlex(),
                        data_dir, collaborators=default_collaborators(queue.path, queue, stash))
    queue.put({"scene_id": 6, "update_type": "metadata"})
    conn = queue._getter  # the queue's own connection
    rows = conn.execute("SELECT typeof(data), typeof(timestamp), status, substr(data, 1, 2) FROM ack_queue_default").fetchall()
    assert rows[0] == rows[1]
    fresh = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False)
    try:
        assert [fresh.get(block=False)["scene_id"] for _ in range(2)] == [5, 6]
    finally:
        fresh.close()
