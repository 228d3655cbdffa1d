"""The seed contract of ``dlq_recovery``: classification, the window query, and gated recovery."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from plexsync_recovery_plugin.sync_queue import dlq_recovery
from plexsync_recovery_plugin.sync_queue.dlq_recovery import (
    OPTIONAL_RETRY_ERROR_TYPES,
    PERMANENT_ERROR_TYPES,
    SAFE_RETRY_ERROR_TYPES,
    RecoveryResult,
    get_error_types_for_recovery,
    get_outage_dlq_entries,
    recover_outage_jobs,
)
from plexsync_recovery_plugin.sync_queue.operations import enqueue, get_queued_scene_ids, make_job
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import dlq_rows


def recover(entries, queue, stash, plex, data_dir) -> RecoveryResult:
    return recover_outage_jobs(entries, queue, stash, plex, data_dir)


def window(dlq, types=("PlexServerDown",)):
    return get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, list(types))


# --- error classification -------------------------------------------------------------------


def test_conservative_default_is_server_down_only():
    assert get_error_types_for_recovery() == ["PlexServerDown"]
    assert SAFE_RETRY_ERROR_TYPES == ["PlexServerDown"]


def test_optional_types_are_added_on_request():
    assert get_error_types_for_recovery(include_optional=True) == ["PlexServerDown", "PlexTemporaryError", "PlexNotFound"]
    assert OPTIONAL_RETRY_ERROR_TYPES == ["PlexTemporaryError", "PlexNotFound"]


@pytest.mark.parametrize("include_optional", [False, True])
def test_permanent_types_are_never_recovered(include_optional):
    types = get_error_types_for_recovery(include_optional)
    assert set(PERMANENT_ERROR_TYPES) == {"PlexPermanentError", "PlexAuthError", "PlexPermissionError"}
    assert not set(types) & set(PERMANENT_ERROR_TYPES)


def test_error_type_lists_are_fresh_copies():
    first = get_error_types_for_recovery()
    first.append("PlexAuthError")
    assert get_error_types_for_recovery() == ["PlexServerDown"]
    assert SAFE_RETRY_ERROR_TYPES == ["PlexServerDown"]


# --- window query ---------------------------------------------------------------------------


def test_empty_dlq_gives_empty_list(dlq):
    assert window(dlq) == []


def test_entries_outside_the_window_are_excluded(dlq, add_entry):
    add_entry(1, failed_at=WINDOW_START - 1)
    add_entry(2, failed_at=WINDOW_END + 1)
    assert window(dlq) == []


def test_entries_of_other_types_are_excluded(dlq, add_entry):
    add_entry(1, error_type="PlexAuthError")
    add_entry(2, error_type="PlexTemporaryError")
    assert window(dlq) == []


def test_matching_entry_has_every_contract_field(dlq, add_entry):
    entry_id = add_entry(7, failed_at=WINDOW_START + 10)
    [entry] = window(dlq)
    assert {"id", "scene_id", "error_type", "error_message", "failed_at", "job_data"} <= set(entry)
    assert entry["id"] == entry_id
    assert entry["scene_id"] == 7
    assert entry["error_type"] == "PlexServerDown"
    assert entry["error_message"] == "boom"
    assert entry["failed_at"] == "2026-02-15 19:00:10"
    assert pickle.loads(entry["job_data"])["scene_id"] == 7


def test_entries_come_oldest_first(dlq, add_entry):
    add_entry(3, failed_at=WINDOW_START + 300)
    add_entry(1, failed_at=WINDOW_START + 100)
    add_entry(2, failed_at=WINDOW_START + 200)
    assert [entry["scene_id"] for entry in window(dlq)] == [1, 2, 3]


def test_several_types_are_selected_together(dlq, add_entry):
    add_entry(1, error_type="PlexServerDown")
    add_entry(2, error_type="PlexNotFound")
    add_entry(3, error_type="PlexAuthError")
    found = window(dlq, types=get_error_types_for_recovery(include_optional=True))
    assert sorted(entry["scene_id"] for entry in found) == [1, 2]


def test_exact_start_and_end_are_included(dlq, add_entry):
    add_entry(1, failed_at=WINDOW_START)
    add_entry(2, failed_at=WINDOW_END)
    add_entry(3, failed_at=WINDOW_END + 1)
    assert [entry["scene_id"] for entry in window(dlq)] == [1, 2]


def test_empty_type_list_selects_nothing(dlq, add_entry):
    add_entry(1)
    assert get_outage_dlq_entries(dlq, WINDOW_START, WINDOW_END, []) == []


def test_sub_second_bounds_are_exact(dlq, add_entry):
    add_entry(1, failed_at=WINDOW_START)  # stored as whole seconds
    assert get_outage_dlq_entries(dlq, WINDOW_START + 0.001, WINDOW_END, ["PlexServerDown"]) == []
    assert len(get_outage_dlq_entries(dlq, WINDOW_START - 0.5, WINDOW_START - 0.0, ["PlexServerDown"])) == 1


# --- recovery -------------------------------------------------------------------------------


def test_plex_unhealthy_skips_everything_and_touches_nothing(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(1)
    add_entry(2)
    plex.query.side_effect = ConnectionError("refused")
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert result.total_dlq_entries == 2
    assert result.skipped_plex_down == 2
    assert result.recovered == 0
    assert stash.find_scene.call_count == 0
    assert drain(data_dir) == []


def test_all_already_queued_are_skipped(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(1)
    add_entry(2)
    enqueue(queue, 1, "metadata", {})
    enqueue(queue, 2, "metadata", {})
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert result.skipped_already_queued == 2
    assert result.recovered == 0
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]


def test_scene_missing_from_stash_is_skipped(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(1)
    add_entry(2)
    stash.deleted.add(2)
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert (result.recovered, result.skipped_scene_missing) == (1, 1)
    assert [job["scene_id"] for job in drain(data_dir)] == [1]


def test_success_requeues_the_original_job(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(5, update_type="metadata", data={"title": "A Scene", "studio": "Studio"})
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert result == RecoveryResult(
        total_dlq_entries=1,
        recovered=1,
        recovered_scene_ids=[5],
        plex_latency_ms=result.plex_latency_ms,
        run_id=result.run_id,
    )
    [job] = drain(data_dir)
    assert job["scene_id"] == 5
    assert job["update_type"] == "metadata"
    assert job["data"] == {"title": "A Scene", "studio": "Studio"}
    assert job["job_key"] == "scene_5"
    assert {"job_id", "enqueued_at"} <= set(job)


def test_duplicate_scene_in_one_batch_is_queued_once(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(9, failed_at=WINDOW_START + 1)
    add_entry(9, failed_at=WINDOW_START + 2)
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert (result.recovered, result.skipped_already_queued) == (1, 1)
    assert result.recovered_scene_ids == [9]
    assert [job["scene_id"] for job in drain(data_dir)] == [9]


def test_mixed_batch_counts_add_up(dlq, queue, stash, plex, data_dir, add_entry):
    for scene_id in range(1, 7):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    enqueue(queue, 2, "metadata", {})
    stash.deleted.update({3, 4})
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert result.total_dlq_entries == 6
    assert result.recovered == 3
    assert result.skipped_already_queued == 1
    assert result.skipped_scene_missing == 2
    assert result.recovered_scene_ids == [1, 5, 6]
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 5, 6]


def test_enqueue_failure_is_counted_and_the_run_goes_on(dlq, queue, stash, plex, data_dir, add_entry, mocker):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_START + 2)
    add_entry(3, failed_at=WINDOW_START + 3)

    def flaky_enqueue(q, scene_id, update_type, data):
        if scene_id == 2:
            raise OSError("disk full")
        return enqueue(q, scene_id, update_type, data)

    mocker.patch.object(dlq_recovery, "enqueue", side_effect=flaky_enqueue)
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert (result.recovered, result.failed) == (2, 1)
    assert result.recovered_scene_ids == [1, 3]
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 3]


def test_corrupt_job_data_is_counted_as_failed(dlq, queue, stash, plex, data_dir, plexsync_dir, add_entry):
    plexsync_dir.add_dead_letter(make_job(1, "metadata", {}), job_data=b"not a pickle", failed_at=WINDOW_START + 60)
    add_entry(2)
    result = recover(window(dlq), queue, stash, plex, data_dir)
    assert (result.recovered, result.failed) == (1, 1)
    assert [job["scene_id"] for job in drain(data_dir)] == [2]


def test_second_run_on_the_same_entries_recovers_nothing(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(1)
    add_entry(2)
    first = recover(window(dlq), queue, stash, plex, data_dir)
    second = recover(window(dlq), queue, stash, plex, data_dir)
    assert first.recovered == 2
    assert (second.recovered, second.skipped_already_queued) == (0, 2)
    assert len(drain(data_dir)) == 2


def test_recovery_never_deletes_dlq_rows(dlq, queue, stash, plex, data_dir, add_entry):
    for scene_id in range(1, 4):
        add_entry(scene_id)
    before = dlq_rows(dlq.db_path)
    recover(window(dlq), queue, stash, plex, data_dir)
    assert dlq_rows(dlq.db_path) == before


def test_gate_functions_are_looked_up_at_call_time(dlq, queue, stash, plex, data_dir, add_entry, mocker):
    add_entry(1)
    mocker.patch.object(dlq_recovery, "check_plex_health", return_value=(False, 0.0))
    assert recover(window(dlq), queue, stash, plex, data_dir).skipped_plex_down == 1
    mocker.patch.object(dlq_recovery, "check_plex_health", return_value=(True, 1.0))
    mocker.patch.object(dlq_recovery, "get_queued_scene_ids", return_value={1})
    assert recover(window(dlq), queue, stash, plex, data_dir).skipped_already_queued == 1


def test_queued_jobs_are_readable_from_another_process(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(11)
    add_entry(12, failed_at=WINDOW_START + 120)
    assert recover(window(dlq), queue, stash, plex, data_dir).recovered == 2
    script = (
        "import sys; from persistqueue import SQLiteAckQueue\n"
        "q = SQLiteAckQueue(sys.argv[1], auto_resume=False)\n"
        "print(q.get(block=False)['scene_id'], q.get(block=False)['scene_id'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(data_dir) / "queue")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["11", "12"]
    assert get_queued_scene_ids(queue.path) == {11, 12}


def test_no_entries_means_no_probe(queue, stash, plex, data_dir):
    result = recover([], queue, stash, plex, data_dir)
    assert result.total_dlq_entries == 0
    assert plex.query.call_count == 0
