"""A queue as PlexSync leaves it after months: every acked job ever, retry rows, failed acks.

PlexSync never clears acked rows, so "the scene has a row in the queue" means nothing. An
entry is covered only by a live job (pending or in progress, any age) or by an acked job
enqueued at or after the entry failed. The rows are written the way PlexSync's worker
writes them (``put``, ``get``, ``ack``, ``ack_failed``, and its retry: ack the row, then put
a fresh copy), with their enqueue times set to the moment they stand for.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue import operations as queue_snapshot
from plexsync_recovery_plugin.sync_queue.dlq_recovery import get_outage_dlq_entries, recover_outage_jobs
from plexsync_recovery_plugin.sync_queue.operations import enqueue
from tests.cli.conftest import server_flags
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import HealthyPlex, PlainStash, pending_scene_counts

MONTHS_AGO = WINDOW_START - 120 * 86400
WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]


def _enqueued_at(data_dir: Path, scene_id: int, when: float) -> int:
    """Date the newest row (``scene_id``'s) to ``when``, as if PlexSync had enqueued it then; return its id."""
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:
        row_id = conn.execute("SELECT max(_id) FROM ack_queue_default").fetchone()[0]
        conn.execute("UPDATE ack_queue_default SET timestamp = ? WHERE _id = ?", (when, row_id))
    conn.close()
    return int(row_id)


def _synced(queue, data_dir: Path, scene_id: int, when: float, *, status: str = "ack") -> None:
    """PlexSync queued a job for ``scene_id`` at ``when`` and its worker finished it (ack or ack_failed)."""
    enqueue(queue, scene_id, "metadata", {"title": f"old {scene_id}"})
    row_id = _enqueued_at(data_dir, scene_id, when)
    getattr(queue, status)(queue.get(block=False, id=row_id))


def _retried_then_failed(queue, data_dir: Path, scene_id: int, first_try: float) -> None:
    """PlexSync's retry: ack the failed try, put a fresh copy (again and again), then the last try fails for good."""
    enqueue(queue, scene_id, "metadata", {"title": "retry"})
    row_id = _enqueued_at(data_dir, scene_id, first_try)
    for attempt in range(1, 3):
        queue.ack(queue.get(block=False, id=row_id))
        enqueue(queue, scene_id, "metadata", {"title": "retry", "retry_count": attempt})
        row_id = _enqueued_at(data_dir, scene_id, first_try + 30 * attempt)
    queue.ack_failed(queue.get(block=False, id=row_id))


def _paths(queue, stash):
    return {"seed (per entry)": None, "plugin (batched)": default_collaborators(queue.path, queue, stash)}


@pytest.mark.parametrize("path", ["seed (per entry)", "plugin (batched)"])
def test_old_acked_rows_retry_rows_and_failed_acks_never_block(dlq, queue, data_dir, add_entry, path):
    for scene_id in (1, 2, 3):
        add_entry(scene_id, failed_at=WINDOW_START + 600)
    _synced(queue, data_dir, 1, MONTHS_AGO)  # synced months ago: older data than the failed job
    _retried_then_failed(queue, data_dir, 2, WINDOW_START + 400)  # its own retry rows, acked before it failed
    _synced(queue, data_dir, 3, WINDOW_START + 700, status="ack_failed")  # a failed ack never counts
    stash = PlainStash()
    result = recover_outage_jobs(get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"]), queue,
                                 stash, HealthyPlex(), data_dir, collaborators=_paths(queue, stash)[path])
    assert (result.recovered, result.skipped_already_queued) == (3, 0)
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]


@pytest.mark.parametrize("path", ["seed (per entry)", "plugin (batched)"])
def test_live_jobs_of_any_age_and_acked_jobs_newer_than_the_failure_cover(dlq, queue, data_dir, add_entry, path):
    for scene_id in (1, 2, 3):
        add_entry(scene_id, failed_at=WINDOW_START + 600)
    enqueue(queue, 1, "metadata", {})
    _enqueued_at(data_dir, 1, MONTHS_AGO)  # pending since long ago: still covers
    enqueue(queue, 2, "metadata", {})
    queue.get(block=False, id=_enqueued_at(data_dir, 2, MONTHS_AGO))  # in progress: covers
    _synced(queue, data_dir, 3, WINDOW_START + 601)  # enqueued after the second it failed in, then synced
    stash = PlainStash()
    result = recover_outage_jobs(get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"]), queue,
                                 stash, HealthyPlex(), data_dir, collaborators=_paths(queue, stash)[path])
    assert (result.recovered, result.skipped_already_queued) == (0, 3)


def test_dedup_decodes_only_live_rows_and_acked_rows_since_the_window(dlq, queue, data_dir, add_entry, mocker):
    """A long acked history is bounded in SQL: old rows are never unpickled."""
    add_entry(5, failed_at=WINDOW_START + 10)
    for scene_id in range(100, 400):
        _synced(queue, data_dir, scene_id, MONTHS_AGO + scene_id)
    _synced(queue, data_dir, 7, WINDOW_START + 20)  # enqueued after the earliest failure: read
    enqueue(queue, 8, "metadata", {})  # live: read
    decoded = mocker.spy(queue_snapshot, "safe_loads")
    stash = PlainStash()
    result = recover_outage_jobs(get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"]), queue,
                                 stash, HealthyPlex(), data_dir, collaborators=default_collaborators(queue.path, queue, stash))
    assert result.recovered == 1
    assert decoded.call_count == 2


def _clear_queue_by_hand(data_dir: Path) -> None:
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:
        conn.execute("DELETE FROM ack_queue_default")
    conn.close()


def test_again_redrives_what_the_ledger_holds_once_the_queue_was_cleared_by_hand(
    run_cli, data_dir, add_entry, queue, plex_server, stash_server
):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_START + 2)
    flags = ["--data-dir", data_dir, "--json", *server_flags(plex_server, stash_server)]
    assert json.loads(run_cli("recover", *WINDOW, *flags).stdout)["recovered"] == 2
    _clear_queue_by_hand(data_dir)
    assert json.loads(run_cli("recover", *WINDOW, *flags).stdout)["recovered"] == 0  # the ledger holds them
    enqueue(queue, 2, "metadata", {"queued": "by PlexSync"})  # scene 2 has a live job again

    preview = json.loads(run_cli("recover", *WINDOW, "--again", "--dry-run", *flags).stdout)
    assert [(row["scene_id"], row["outcome"]) for row in preview["entries"]] == [(1, "would recover"), (2, "already queued")]
    assert pending_scene_counts(data_dir) == {2: 1}  # the preview wrote nothing

    again = json.loads(run_cli("recover", *WINDOW, "--again", *flags).stdout)
    assert (again["recovered"], again["skipped_already_queued"]) == (1, 1)
    assert pending_scene_counts(data_dir) == {1: 1, 2: 1}
    assert json.loads(run_cli("recover", *WINDOW, "--again", *flags).stdout)["recovered"] == 0  # scene 1 is live now


def test_acked_rows_are_found_when_the_clock_stepped_back_a_little(dlq, queue, data_dir, add_entry):
    """The acked scan starts by a binary search on enqueue times; a clock that stepped back an hour is tolerated."""
    from plexsync_recovery_plugin.sync_queue.operations import QueueFile

    for scene_id in range(100, 160):
        _synced(queue, data_dir, scene_id, MONTHS_AGO + scene_id)
    _synced(queue, data_dir, 7, WINDOW_START + 600)  # synced after the window began
    _synced(queue, data_dir, 8, WINDOW_START - 3600)  # the clock stepped back an hour, then the job ran
    _synced(queue, data_dir, 9, WINDOW_START + 700)
    for scene_id in range(200, 260):
        _synced(queue, data_dir, scene_id, WINDOW_START + 800 + scene_id)
    snapshot = QueueFile(queue.path).snapshot(WINDOW_START)
    assert {7, 9} | set(range(200, 260)) == set(snapshot.acked)
    assert snapshot.acked[9] == WINDOW_START + 700
