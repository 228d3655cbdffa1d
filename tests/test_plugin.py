"""``RecoveryPlugin`` driven by fake signals, and the whole flow from ``OutageHistory`` to the queue."""

from __future__ import annotations

import gc
import math

import pytest

from plexsync_recovery_plugin import (
    OutageHistory,
    RecoveryPlugin,
    RecoveryResult,
    engine,
    outage_ended,
    recovery_completed,
)
from plexsync_recovery_plugin.sync_queue.operations import QueueFile
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.fakes import Recorder


def test_outage_ended_recovers_the_window_and_reports(plugin, completed, data_dir, add_entry):
    add_entry(1, failed_at=WINDOW_START + 5)
    add_entry(2, failed_at=WINDOW_START - 5)  # before the outage
    add_entry(3, error_type="PlexAuthError")  # permanent
    outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    [call] = completed.calls
    assert call["sender"] is plugin
    assert (call["start"], call["end"]) == (WINDOW_START, WINDOW_END)
    result = call["result"]
    assert isinstance(result, RecoveryResult)
    assert (result.total_dlq_entries, result.recovered, result.recovered_scene_ids) == (1, 1, [1])
    assert [job["scene_id"] for job in drain(data_dir)] == [1]


def test_optional_types_need_include_optional(dlq, queue, stash, plex, data_dir, add_entry, completed):
    add_entry(1, error_type="PlexNotFound")
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir):
        outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir, include_optional=True):
        outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    assert [call["result"].recovered for call in completed.calls] == [0, 1]


def test_plugin_nobody_references_keeps_working(dlq, queue, stash, plex, data_dir, add_entry, completed):
    add_entry(4)
    RecoveryPlugin(dlq, queue, stash, plex, data_dir).connect()
    gc.collect()
    try:
        outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
        assert [call["result"].recovered for call in completed.calls] == [1]
    finally:
        for receiver in list(outage_ended.receivers.values()):
            if getattr(receiver, "__self__", None).__class__ is RecoveryPlugin:
                outage_ended.disconnect(receiver)


def test_disconnected_plugin_does_nothing(dlq, queue, stash, plex, data_dir, add_entry, completed):
    add_entry(1)
    plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir).connect()
    plugin.disconnect()
    outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    assert completed.calls == []
    assert drain(data_dir) == []


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        (WINDOW_END, WINDOW_START, str(WINDOW_END)),
        (math.nan, WINDOW_END, "nan"),
        (WINDOW_START, math.inf, "inf"),
        (-5.0, WINDOW_END, "-5.0"),
        ("yesterday", WINDOW_END, "'yesterday'"),
        (None, WINDOW_END, "start is missing"),
        (True, WINDOW_END, "True"),
    ],
)
def test_nonsense_window_fails_cleanly(plugin, completed, failed, data_dir, add_entry, start, end, named):
    add_entry(1)
    outage_ended.send(None, start=start, end=end)  # must not raise
    assert completed.calls == []
    [call] = failed.calls
    assert call["sender"] is plugin
    assert named in str(call["error"])
    assert drain(data_dir) == []


def test_missing_end_is_a_failure_not_an_exception(plugin, failed):
    outage_ended.send(None, start=WINDOW_START)
    assert "end is missing" in str(failed.calls[0]["error"])


def test_crash_inside_recovery_never_reaches_the_sender(plugin, failed, completed, add_entry, mocker):
    add_entry(1)
    mocker.patch.object(QueueFile, "snapshot", side_effect=RuntimeError("queue exploded"))
    outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    assert completed.calls == []
    assert str(failed.calls[0]["error"]) == "queue exploded"


def test_failing_completed_subscriber_does_not_stop_the_others(plugin, add_entry, caplog):
    add_entry(1)
    good = Recorder()

    def broken_subscriber(sender, **kwargs):
        raise ValueError("subscriber bug")

    with recovery_completed.connected_to(broken_subscriber), recovery_completed.connected_to(good):
        outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    assert good.calls[0]["result"].recovered == 1
    assert "broken_subscriber" in caplog.text


def test_whole_flow_with_real_files(dlq, queue, stash, plex, data_dir, add_entry):
    """OutageHistory -> outage_ended -> plugin -> real SQLiteAckQueue -> recovery_completed."""
    history = OutageHistory(data_dir)
    start, end = WINDOW_START, WINDOW_START + 600
    add_entry(10, failed_at=start - 30)  # before
    add_entry(11, failed_at=start)  # exactly at start
    add_entry(12, failed_at=start + 300)
    add_entry(13, failed_at=start + 301)  # scene deleted from Stash
    add_entry(14, failed_at=start + 302, error_type="PlexPermissionError")
    add_entry(15, failed_at=end)  # exactly at end
    add_entry(16, failed_at=end + 30)  # after
    add_entry(12, failed_at=start + 400)  # same scene again
    stash.deleted.add(13)
    completed = Recorder()
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir), recovery_completed.connected_to(completed):
        history.record_outage_start(start)
        history.record_outage_end(end, jobs_affected=5)
    [call] = completed.calls
    result = call["result"]
    assert (call["start"], call["end"]) == (start, end)
    assert result.total_dlq_entries == 5
    assert result.recovered == 3
    assert result.recovered_scene_ids == [11, 12, 15]
    assert result.skipped_scene_missing == 1
    assert result.skipped_already_queued == 1
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [11, 12, 15]
    assert dlq.get_count() == 8
    [record] = history.get_history()
    assert record == {"started_at": start, "ended_at": end, "duration": 600.0, "jobs_affected": 5}


def test_window_is_widened_to_the_dlq_whole_seconds(plugin, completed, data_dir, add_entry):
    # failed 0.4 s after a probe-dated start, but PlexSync stores whole seconds: 19:00:00
    add_entry(21, failed_at=WINDOW_START + 0.4)
    add_entry(22, failed_at=WINDOW_START + 10)
    outage_ended.send(None, start=WINDOW_START + 0.7, end=WINDOW_START + 9.2)
    [call] = completed.calls
    assert (call["start"], call["end"]) == (WINDOW_START, WINDOW_START + 10)
    assert call["result"].recovered_scene_ids == [21, 22]


def test_progress_is_sent_after_every_chunk_then_the_result_is_frozen(plugin, completed, data_dir, mocker):
    from plexsync_recovery_plugin import recovery_progress
    from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
    from plexsync_recovery_plugin.sync_queue.operations import make_job

    PlexSyncData(data_dir).add_dead_letters(
        [{"job": make_job(scene_id, "metadata", {}), "failed_at": WINDOW_START + scene_id % 600} for scene_id in
         range(1, 251)]
    )
    mocker.patch.object(engine, "RECOVERY_CHUNK", 100)
    progress = Recorder()
    with recovery_progress.connected_to(progress, sender=plugin):
        outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    assert [(call["done"], call["total"]) for call in progress.calls] == [(100, 250), (200, 250), (250, 250)]
    assert [sum(v for k, v in call["counts"].items() if k != "total_dlq_entries") for call in progress.calls] == [
        100, 200, 250]
    result = completed.calls[0]["result"]
    assert result.counts() == progress.calls[-1]["counts"]
    with pytest.raises(Exception):
        result.recovered = 0  # frozen: a receiver cannot change what the next one sees
    with pytest.raises(TypeError):
        result.recovered_scene_ids.append(1)


def test_progress_total_is_estimated_from_the_index_and_exact_in_the_last_report(plugin, completed, data_dir, mocker):
    from plexsync_recovery_plugin import recovery_progress
    from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
    from plexsync_recovery_plugin.sync_queue.operations import make_job

    rows = [{"job": make_job(n, "metadata", {}), "failed_at": WINDOW_START + n} for n in range(1, 151)]
    rows += [{"job": make_job(n, "metadata", {}), "failed_at": WINDOW_START + n, "error_type": "PlexAuthError"}
             for n in range(200, 250)]  # in the window's time, but never recovered
    PlexSyncData(data_dir).add_dead_letters(rows)
    mocker.patch.object(engine, "RECOVERY_CHUNK", 100)
    progress = Recorder()
    with recovery_progress.connected_to(progress, sender=plugin):
        outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    assert [(call["done"], call["total"]) for call in progress.calls] == [(100, 200), (150, 150)]
    assert completed.calls[0]["result"].total_dlq_entries == 150
