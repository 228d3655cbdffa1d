"""A queue that cannot be written: the error names its cause and its file, and costs only what it must.

- An entry whose job cannot be encoded for the queue fails alone: the rest of its chunk is
  written and the window is not deferred (a corrupt entry never defers a window).
- A write the file system refuses (here: a file-size limit, so the write really fails with
  EFBIG, which SQLite reports as ``SQLITE_IOERR_WRITE``; a full disk is ``SQLITE_FULL``) is
  reported with its cause and the queue file's path, never hidden behind "cannot rollback".
- A queue file that cannot be opened is named in the message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from plexsync_recovery_plugin import engine as job_writers
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from plexsync_recovery_plugin.sync_queue.dlq_recovery import recover_outage_jobs
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_END, WINDOW_START
from tests.reliability.helpers import HealthyPlex, PlainStash, pending_scene_counts

REPO = Path(__file__).resolve().parents[2]


def _recover(dlq, queue, data_dir):
    stash = PlainStash()
    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"])
    return recover_outage_jobs(window, queue, stash, HealthyPlex(), data_dir,
                               collaborators=default_collaborators(queue.path, queue, stash))


def test_a_job_that_cannot_be_encoded_fails_alone(dlq, queue, data_dir, add_entry, mocker):
    for scene_id in range(1, 6):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    real_dumps = job_writers.queue_pickle.dumps

    def dumps(job, *args, **kwargs):
        if job["scene_id"] == 3:
            raise RecursionError("maximum recursion depth exceeded while pickling an object")
        return real_dumps(job, *args, **kwargs)

    mocker.patch.object(job_writers.queue_pickle, "dumps", side_effect=dumps)
    result = _recover(dlq, queue, data_dir)
    assert (result.recovered, result.failed, result.deferred) == (4, 1, False)
    assert set(pending_scene_counts(data_dir)) == {1, 2, 4, 5}


def test_a_deeply_nested_entry_costs_only_itself(dlq, queue, data_dir, add_entry):
    deep: list = []
    for _ in range(5000):  # 10 KB: refused by the decoder's depth limit, or at the latest by the encoder
        deep = [deep]
    for scene_id in range(1, 4):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    PlexSyncData(data_dir).add_dead_letter(make_job(9, "metadata", {"x": 1}), failed_at=WINDOW_START + 9,
                                           job_data=_pickle_without_recursion(deep, 9))
    result = _recover(dlq, queue, data_dir)
    assert (result.recovered, result.failed, result.deferred) == (3, 1, False)


def _pickle_without_recursion(deep: list, scene_id: int) -> bytes:
    """A job dict whose ``data`` is ``deep``, pickled by hand (pickle.dumps would recurse too deep)."""
    depth = 0
    while deep:
        depth, deep = depth + 1, deep[0]
    head = b"\x80\x04}(\x8c\x08scene_id" + b"K" + bytes([scene_id]) + b"\x8c\x0bupdate_type\x8c\x08metadata\x8c\x04data"
    return head + b"]" * 1 + (b"(]" * (depth - 1)) + b"e" * (depth - 1) + b"u."


def test_a_refused_write_is_named_with_its_cause_and_the_queue_file(data_dir, dlq, queue, add_entry):
    for scene_id in range(1, 400):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id, data={"title": "x" * 2000})
    queue.close()
    script = textwrap.dedent(
        f"""
        import json, logging, resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
        from plexsync_recovery_plugin.sync_queue.dlq_recovery import recover_outage_jobs
        from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
        from plexsync_recovery_plugin.sync_queue.operations import open_queue
        from plexsync_recovery_plugin.engine import default_collaborators
        from tests.fakes import HealthyPlex, PlainStash
        logging.basicConfig(level=logging.ERROR, format="%(message)s")
        data_dir = Path({str(data_dir)!r})
        queue = open_queue(data_dir)
        size = (data_dir / "queue" / "data.db").stat().st_size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 64 * 1024, resource.RLIM_INFINITY))
        stash = PlainStash()
        window = DlqWindow(DeadLetterQueue(data_dir), {WINDOW_START!r}, {WINDOW_END!r}, ["PlexServerDown"])
        result = recover_outage_jobs(window, queue, stash, HealthyPlex(), data_dir,
                                     collaborators=default_collaborators(queue.path, queue, stash))
        print(json.dumps({{"failed": result.failed, "deferred": result.deferred}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failed"] > 0 and report["deferred"] is True
    errors = [line for line in proc.stderr.splitlines() if "could not write" in line]
    assert errors, proc.stderr
    assert all("disk I/O error (SQLITE_IOERR_WRITE)" in line and str(data_dir / "queue" / "data.db") in line
               for line in errors), errors
    assert "cannot rollback" not in proc.stderr


def test_a_queue_file_that_cannot_be_opened_is_named(dlq, queue, data_dir, add_entry):
    add_entry(1)
    queue.close()
    db_file = data_dir / "queue" / "data.db"
    for leftover in db_file.parent.iterdir():
        leftover.unlink()
    db_file.mkdir()  # not a file: SQLite answers "unable to open database file" without saying which
    stash = PlainStash()
    from plexsync_recovery_plugin.sync_queue.operations import QueueFile, QueueFileError

    try:
        QueueFile(data_dir / "queue").snapshot(None)
    except QueueFileError as error:
        message = str(error)
    else:
        raise AssertionError("a directory was read as a queue file")
    assert str(db_file) in message and "unable to open database file" in message
    assert stash.find_scene(1) is not None
