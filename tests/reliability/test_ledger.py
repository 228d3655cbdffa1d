"""Exactly-once redrive, with an audit trail: the ledger ``dead_letter_recoveries`` in ``data.db``.

Every redriven DLQ entry gets one record (DLQ id, scene, job, queue row, run, time), written
in the same transaction as its job. An entry once redriven is never redriven again, even
after PlexSync's worker drained the queue and cleared its acked rows. DLQ rows are never
deleted or rewritten.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

from plexsync_recovery_plugin import engine, outage_ended
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue import operations as ledger
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.dlq_recovery import get_outage_dlq_entries, recover_outage_jobs
from plexsync_recovery_plugin.sync_queue.operations import LEDGER_TABLE, QueueFile, make_job
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import (
    HealthyPlex,
    PlainStash,
    assert_ledger_matches_queue,
    dlq_rows,
    ledger_rows,
    queue_rows,
)


def _window(dlq):
    return get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"])


def _batched(queue, stash):
    """The plugin's collaborators: one transaction per chunk (the seed's default path is per job)."""
    return default_collaborators(queue.path, queue, stash)


def _work_off_and_clear(data_dir: Path) -> list[int]:
    """PlexSync's worker: take and ack every job, then ``clear_acked_data(keep_latest=0)``."""
    worker = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False)
    done = []
    try:
        while True:
            try:
                job = worker.get(block=False)
            except Empty:
                break
            done.append(job["scene_id"])
            worker.ack(job)
        worker.clear_acked_data(max_delete=100_000, keep_latest=0)
    finally:
        worker.close()
    assert queue_rows(data_dir) == []  # really gone: gate 2 cannot see these scenes in the queue
    return sorted(done)


def test_each_redrive_is_recorded_with_its_run_and_queue_row(dlq, queue, data_dir, add_entry):
    ids = [add_entry(scene_id, failed_at=WINDOW_START + scene_id) for scene_id in (4, 5, 6)]
    before = time.time()
    stash = PlainStash()
    result = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=_batched(queue, stash))
    after = time.time()
    records = ledger_rows(data_dir)
    assert [(r["dlq_id"], r["scene_id"], r["run_id"]) for r in records] == [
        (ids[0], 4, result.run_id),
        (ids[1], 5, result.run_id),
        (ids[2], 6, result.run_id),
    ]
    assert all(before <= r["recovered_at"] <= after for r in records)
    queued = {row["_id"]: row["job"] for row in queue_rows(data_dir)}
    for record in records:
        assert queued[record["queue_row_id"]]["scene_id"] == record["scene_id"]
        assert queued[record["queue_row_id"]]["job_id"] == record["job_id"]
    assert QueueFile(queue.path).all_ledger_records() == records


@pytest.mark.parametrize("how", ["clear_acked_data", "delete_rows"])
def test_redriven_entry_is_not_sent_again_after_the_queue_was_emptied(
    dlq, queue, data_dir, add_entry, how, completed, plugin
):
    add_entry(1)
    add_entry(2, failed_at=WINDOW_START + 120)
    outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    assert completed.calls[0]["result"].recovered == 2
    if how == "clear_acked_data":
        assert _work_off_and_clear(data_dir) == [1, 2]
    else:  # someone deleted the rows by hand
        conn = sqlite3.connect(data_dir / "queue" / "data.db")
        with conn:
            conn.execute("DELETE FROM ack_queue_default")
        conn.close()
    outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)  # the same outage, announced again
    second = completed.calls[1]["result"]
    assert (second.recovered, second.skipped_already_queued) == (0, 2)
    assert drain(data_dir) == []
    assert len(ledger_rows(data_dir)) == 2


def test_a_new_failure_of_the_same_scene_is_a_new_entry_and_is_recovered(dlq, queue, data_dir, add_entry):
    """Exactly once per DLQ entry: the ledger is keyed by entry, not by scene."""
    first_id = add_entry(7, failed_at=WINDOW_START + 10)
    recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    _work_off_and_clear(data_dir)
    second_id = add_entry(7, failed_at=WINDOW_START + 20)  # it failed again, later
    result = recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    assert (result.recovered, result.skipped_already_queued) == (1, 1)
    assert [record["dlq_id"] for record in ledger_rows(data_dir)] == [first_id, second_id]


def test_ledger_and_jobs_are_one_transaction(dlq, queue, data_dir, add_entry, mocker):
    """If recording fails half-way through a chunk, none of the chunk's jobs were queued."""
    for scene_id in range(1, 5):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    real_records = ledger.write_records

    def fail_on_third(conn, records):
        real_records(conn, records[:2])  # two records really written inside the transaction, then a failure
        raise sqlite3.OperationalError("disk I/O error")

    mocker.patch.object(ledger, "write_records", side_effect=fail_on_third)
    stash = PlainStash()
    result = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=_batched(queue, stash))
    assert (result.recovered, result.failed, result.deferred) == (0, 4, True)
    assert queue_rows(data_dir) == []
    assert ledger_rows(data_dir) == []
    mocker.stopall()
    retry = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=_batched(queue, stash))
    assert retry.recovered_scene_ids == [1, 2, 3, 4]
    assert_ledger_matches_queue(data_dir, recovered_scenes={1, 2, 3, 4})


def test_per_job_path_records_too(dlq, queue, data_dir, add_entry):
    add_entry(1)
    add_entry(2, failed_at=WINDOW_START + 120)
    first = recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    assert first.recovered == 2
    records = ledger_rows(data_dir)
    assert [(r["scene_id"], r["run_id"]) for r in records] == [(1, first.run_id), (2, first.run_id)]
    jobs = {row["job"]["job_id"]: row["job"]["scene_id"] for row in queue_rows(data_dir)}
    assert all(jobs[record["job_id"]] == record["scene_id"] for record in records)
    _work_off_and_clear(data_dir)
    second = recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    assert (second.recovered, second.skipped_already_queued) == (0, 2)


def test_dry_run_records_nothing(dlq, queue, data_dir, add_entry):
    add_entry(1)
    result = recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir, dry_run=True)
    assert result.recovered == 1
    assert ledger_rows(data_dir) == []
    assert queue_rows(data_dir) == []


def test_recovery_never_deletes_or_rewrites_dlq_rows_and_keeps_its_ledger_out_of_the_dlq(
    dlq, queue, data_dir, add_entry
):
    for scene_id in range(1, 6):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    add_entry(9, error_type="PlexAuthError")
    before = dlq_rows(data_dir / "dlq.db")
    stash = PlainStash(deleted={3})
    for _ in range(3):
        recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir)
        _work_off_and_clear(data_dir)
    assert dlq_rows(data_dir / "dlq.db") == before
    conn = sqlite3.connect(data_dir / "dlq.db")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert LEDGER_TABLE not in tables
    assert sorted(record["scene_id"] for record in ledger_rows(data_dir)) == [1, 2, 4, 5]


def test_plexsync_still_reads_a_queue_holding_the_ledger(dlq, queue, data_dir, add_entry):
    add_entry(1)
    recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    queue.put({"scene_id": 2, "update_type": "metadata"})  # PlexSync keeps using its queue object
    assert [job["scene_id"] for job in drain(data_dir)] == [1, 2]


def test_a_recreated_dlq_reusing_an_id_is_not_taken_for_redriven(dlq, queue, data_dir, add_entry):
    """PlexSync's ids never repeat within one dlq.db (AUTOINCREMENT), but a user who deletes
    dlq.db starts the ids at 1 again: that new entry 1 is another job and must be recovered."""
    add_entry(1)
    recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir)
    _work_off_and_clear(data_dir)
    (data_dir / "dlq.db").unlink()
    reused_id = PlexSyncData(data_dir).add_dead_letter(make_job(2, "metadata", {}), failed_at=WINDOW_START + 5)
    fresh = DeadLetterQueue(data_dir)
    assert reused_id == 1
    result = recover_outage_jobs(_window(fresh), queue, PlainStash(), HealthyPlex(), data_dir)
    assert result.recovered_scene_ids == [2]


class _StashLockedFor:
    """A Stash that answers with an error for some scenes until ``heal`` is called."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = set(failing)

    def heal(self) -> None:
        self.failing.clear()

    def find_scene(self, scene_id: int) -> dict[str, str]:
        if scene_id in self.failing:
            raise KeyError("findScene")  # what stashapi raises for "database is locked"
        return {"id": str(scene_id)}


@pytest.mark.parametrize("batched", [True, False])
def test_repeated_scene_is_not_sent_again_when_a_deferred_window_is_retried(dlq, queue, data_dir, add_entry, batched):
    add_entry(12, failed_at=WINDOW_START + 1)
    add_entry(12, failed_at=WINDOW_START + 2)  # the same scene failed twice in the outage
    add_entry(20, failed_at=WINDOW_START + 3)
    stash = _StashLockedFor({20})
    collaborators = (lambda: _batched(queue, stash)) if batched else (lambda: None)  # None: the seed's per-job path
    first = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=collaborators())
    assert (first.recovered_scene_ids, first.skipped_already_queued, first.deferred) == ([12], 1, True)
    assert _work_off_and_clear(data_dir) == [12]  # the worker synced scene 12 and cleared its row
    stash.heal()
    second = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=collaborators())
    assert second.recovered_scene_ids == [20]
    assert second.skipped_already_queued == 2
    assert sorted(record["dlq_id"] for record in ledger_rows(data_dir)) == [1, 2, 3]


def test_entry_covered_by_plexsyncs_own_job_is_not_sent_after_a_deferred_retry(dlq, queue, data_dir, add_entry):
    from plexsync_recovery_plugin.sync_queue.operations import enqueue

    add_entry(7, failed_at=WINDOW_START + 1)
    add_entry(20, failed_at=WINDOW_START + 2)
    enqueue(queue, 7, "metadata", {"queued": "by PlexSync"})  # PlexSync's own job covers scene 7
    stash = _StashLockedFor({20})
    first = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir)
    assert (first.recovered, first.skipped_already_queued, first.deferred) == (0, 1, True)
    assert _work_off_and_clear(data_dir) == [7]  # the worker synced scene 7 and cleared its row
    stash.heal()
    second = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir)
    assert second.recovered_scene_ids == [20]
    covered = [record for record in ledger_rows(data_dir) if record["scene_id"] == 7]
    assert [(record["job_id"], record["queue_row_id"]) for record in covered] == [(None, None)]


def _first_layout_ledger(data_dir: Path, records: list[tuple[int, str, int]]) -> None:
    """A ledger as the first release wrote it: keyed by DLQ entry, without ``state`` or ``claim_seq``."""
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    with conn:
        conn.execute(
            f"CREATE TABLE {LEDGER_TABLE} (dlq_id INTEGER NOT NULL, failed_at TEXT NOT NULL, scene_id INTEGER NOT NULL,"
            " job_id INTEGER, queue_row_id INTEGER, run_id TEXT NOT NULL, recovered_at REAL NOT NULL,"
            " PRIMARY KEY (dlq_id, failed_at))"
        )
        conn.executemany(
            f"INSERT INTO {LEDGER_TABLE} VALUES (?, ?, ?, NULL, NULL, 'first-release', 1.0)", records
        )
    conn.close()


@pytest.mark.parametrize("batched", [True, False])
def test_a_ledger_of_the_first_layout_is_kept_read_and_honoured(dlq, queue, data_dir, add_entry, batched):
    """Its records still say which entries were redriven; it is set aside by name, and new records go to the new table."""
    for scene_id in (1, 2, 3):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    entries = list(_window(dlq))
    _first_layout_ledger(data_dir, [(entry["id"], entry["failed_at"], entry["scene_id"]) for entry in entries[:2]])

    collaborators = _batched(queue, PlainStash()) if batched else None
    result = recover_outage_jobs(_window(dlq), queue, PlainStash(), HealthyPlex(), data_dir, collaborators=collaborators)

    assert (result.recovered, result.skipped_already_queued, result.recovered_scene_ids) == (1, 2, [3])
    assert [job["scene_id"] for job in drain(data_dir)] == [3]
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        legacy = conn.execute(f"SELECT dlq_id, run_id FROM {ledger.LEGACY_TABLE} ORDER BY dlq_id").fetchall()
        current = conn.execute(f"SELECT dlq_id, scene_id, state FROM {LEDGER_TABLE}").fetchall()
    finally:
        conn.close()
    assert {LEDGER_TABLE, ledger.LEGACY_TABLE} <= tables
    assert legacy == [(entries[0]["id"], "first-release"), (entries[1]["id"], "first-release")]  # untouched
    assert current == [(entries[2]["id"], 3, ledger.DONE)]
    audit = QueueFile(queue.path).all_ledger_records()
    assert sorted((record["dlq_id"], record["run_id"], record["state"]) for record in audit) == [
        (entries[0]["id"], "first-release", ledger.DONE), (entries[1]["id"], "first-release", ledger.DONE),
        (entries[2]["id"], result.run_id, ledger.DONE),
    ]  # both tables; a first-layout record (no state column) reads as done


def test_a_later_entry_of_a_scene_in_a_later_chunk_points_at_the_scenes_job(dlq, queue, data_dir, add_entry, mocker):
    """Chunks of one entry: the second entry of scene 5 is written in another transaction, yet points at the same job."""

    mocker.patch.object(engine, "RECOVERY_CHUNK", 1)
    add_entry(5, failed_at=WINDOW_START + 10)
    add_entry(5, failed_at=WINDOW_START + 20)
    add_entry(6, failed_at=WINDOW_START + 30)
    stash = PlainStash()
    result = recover_outage_jobs(_window(dlq), queue, stash, HealthyPlex(), data_dir, collaborators=_batched(queue, stash))

    assert (result.recovered, result.skipped_already_queued) == (2, 1)
    rows = [(row["scene_id"], row["job_id"], row["queue_row_id"]) for row in ledger_rows(data_dir)]
    first, second, other = rows
    assert first[0] == second[0] == 5 and other[0] == 6
    assert first[1:] == second[1:] and None not in first  # the same job and queue row, not "covered by PlexSync"
    assert_ledger_matches_queue(data_dir, recovered_scenes={5, 6})
