"""Deferred windows: a window Plex or Stash could not serve stays pending until a run completes it.

Pending windows live in ``<data_dir>/recovery_state.db``, so they survive restarts; the
watch daemon retries them as soon as Plex answers, and the next ``outage_ended`` retries
them too. Overlapping or touching windows merge, and a merged window selects exactly the
entries of the windows it came from.
"""

from __future__ import annotations

import sqlite3

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, outage_ended
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.operations import QueueFile, QueueFileError, open_queue
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import PlainStash, SwitchablePlex, insert_dlq_rows, ledger_rows

S = WINDOW_START


class FailingStash:
    """A Stash that cannot answer: every lookup raises a connection error."""

    def find_scene(self, scene_id: int):
        raise ConnectionError("Stash is restarting")


def _scenes(data_dir) -> list[int]:
    return sorted(job["scene_id"] for job in drain(data_dir))


# --- the plugin keeps what it could not finish -----------------------------------------------


def test_plex_down_defers_the_run_and_keeps_the_window(plugin, plex, data_dir, add_entry, completed):
    add_entry(1)
    add_entry(2, failed_at=S + 120)
    plex.up = False
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    [call] = completed.calls
    assert call["result"].deferred is True
    assert call["result"].skipped_plex_down == 2
    assert plugin.pending_windows() == [(S, WINDOW_END)]
    assert drain(data_dir) == []


def test_completed_run_says_not_deferred_and_drops_the_window(plugin, data_dir, add_entry, completed):
    add_entry(1)
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    assert completed.calls[0]["result"].deferred is False
    assert plugin.pending_windows() == []
    assert _scenes(data_dir) == [1]


def test_pending_window_survives_a_restart_and_is_retried(dlq, queue, stash, data_dir, add_entry, completed):
    add_entry(1)
    add_entry(2, failed_at=S + 300)
    with RecoveryPlugin(dlq, queue, stash, SwitchablePlex(up=False), data_dir):
        outage_ended.send("tracker", start=S, end=WINDOW_END)
    queue.close()
    # "Restart": new objects on the same data dir, nothing shared with the first plugin.
    fresh_queue = open_queue(data_dir)
    try:
        restarted = RecoveryPlugin(DeadLetterQueue(data_dir), fresh_queue, PlainStash(), SwitchablePlex(), data_dir)
        assert restarted.pending_windows() == [(S, WINDOW_END)]
        [run] = restarted.retry_pending()
        result = run.result
    finally:
        fresh_queue.close()
    assert (result.recovered, result.deferred) == (2, False)
    assert restarted.pending_windows() == []
    assert [call["result"].deferred for call in completed.calls] == [True, False]
    assert (completed.calls[1]["start"], completed.calls[1]["end"]) == (S, WINDOW_END)
    assert _scenes(data_dir) == [1, 2]


def test_watch_daemon_retries_as_soon_as_plex_answers(plugin, plex, data_dir, add_entry, completed):
    add_entry(3)
    plex.up = False
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    now = [S + 4000.0]
    daemon = WatchDaemon(plex, plugin, WatchSettings(retry_interval=3600.0), clock=lambda: now[0])
    daemon.tick()  # Plex still down: nothing to retry yet
    assert plugin.pending_windows() == [(S, WINDOW_END)]
    assert drain(data_dir) == []
    plex.up = True
    now[0] += 5
    daemon.tick()  # the first healthy probe retries at once, whatever retry_interval says
    assert plugin.pending_windows() == []
    assert _scenes(data_dir) == [3]
    assert [call["result"].deferred for call in completed.calls] == [True, False]


def test_watch_daemon_leaves_a_still_failing_window_pending(
    plugin, plex, stash, data_dir, add_entry, completed, mocker
):
    add_entry(3)
    plex.up = False
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    mocker.patch.object(plugin, "stash", FailingStash())
    plex.up = True
    daemon = WatchDaemon(plex, plugin, WatchSettings(retry_interval=3600.0), clock=lambda: S + 4000.0)
    daemon.tick()
    assert plugin.pending_windows() == [(S, WINDOW_END)]
    assert completed.calls[-1]["result"].skipped_stash_error == 1
    assert completed.calls[-1]["result"].deferred is True
    assert drain(data_dir) == []


def test_next_outage_end_retries_what_is_pending(plugin, plex, data_dir, add_entry, completed):
    add_entry(1, failed_at=S + 10)
    add_entry(2, failed_at=S + 5000)
    plex.up = False
    outage_ended.send("tracker", start=S, end=S + 100)
    plex.up = True
    outage_ended.send("tracker", start=S + 4900, end=S + 5100)
    assert plugin.pending_windows() == []
    assert _scenes(data_dir) == [1, 2]
    windows = [(call["start"], call["end"], call["result"].recovered) for call in completed.calls]
    assert windows == [(S, S + 100, 0), (S, S + 100, 1), (S + 4900, S + 5100, 1)]


def test_recover_window_returns_the_run_that_covered_it(plugin, plex, add_entry):
    add_entry(1, failed_at=S + 10)
    add_entry(2, failed_at=S + 50)
    plex.up = False
    plugin.recover_window(S, S + 30)
    plex.up = True
    result = plugin.recover_window(S + 20, S + 60)  # merges with the pending S..S+30
    assert result is not None
    assert result.recovered_scene_ids == [1, 2]


def test_stash_error_keeps_the_window_until_stash_answers(dlq, queue, data_dir, add_entry, completed):
    add_entry(1)
    with RecoveryPlugin(dlq, queue, FailingStash(), SwitchablePlex(), data_dir) as failing:
        outage_ended.send("tracker", start=S, end=WINDOW_END)
        assert failing.pending_windows() == [(S, WINDOW_END)]
    result = completed.calls[0]["result"]
    assert (result.skipped_stash_error, result.skipped_scene_missing, result.deferred) == (1, 0, True)
    with RecoveryPlugin(dlq, queue, PlainStash(), SwitchablePlex(), data_dir) as working:
        assert [r.result.recovered for r in working.retry_pending()] == [1]
        assert working.pending_windows() == []
    assert _scenes(data_dir) == [1]


def test_queue_write_failure_keeps_the_window(plugin, data_dir, add_entry, completed, mocker):
    add_entry(1)
    disk_error = QueueFileError("cannot write the queue file: disk I/O error")
    flush = mocker.patch.object(QueueFile, "write_chunk", side_effect=disk_error)
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    result = completed.calls[0]["result"]
    assert (result.failed, result.recovered, result.deferred) == (1, 0, True)
    assert plugin.pending_windows() == [(S, WINDOW_END)]
    assert ledger_rows(data_dir) == []
    mocker.stop(flush)
    assert [r.result.recovered for r in plugin.retry_pending()] == [1]
    assert plugin.pending_windows() == []
    assert _scenes(data_dir) == [1]


def test_failed_run_keeps_the_window_and_says_why(plugin, data_dir, add_entry, completed, failed, mocker):
    add_entry(1)
    mocker.patch.object(DeadLetterQueue, "_get_connection", side_effect=sqlite3.OperationalError("disk I/O error"))
    outage_ended.send("tracker", start=S, end=WINDOW_END)
    assert completed.calls == []
    assert "disk I/O error" in str(failed.calls[0]["error"])
    assert plugin.pending_windows() == [(S, WINDOW_END)]
    mocker.stopall()
    assert [r.result.recovered for r in plugin.retry_pending()] == [1]
    assert plugin.pending_windows() == []


def test_crash_mid_run_leaves_the_window_pending(dlq, queue, stash, plex, data_dir, add_entry, mocker):
    """A run that dies (here: an exception no handler expects) must not drop its window."""
    add_entry(1)
    plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir)
    mocker.patch("plexsync_recovery_plugin.engine.run_recovery", side_effect=MemoryError)
    plugin.recover_window(S, WINDOW_END)
    assert PendingWindows(data_dir).windows() == [(S, WINDOW_END)]


# --- merging ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ([(S, S + 10), (S + 5, S + 20)], [(S, S + 20)]),  # overlapping
        ([(S + 5, S + 20), (S, S + 10)], [(S, S + 20)]),  # same, other order
        ([(S, S + 10), (S + 2, S + 3)], [(S, S + 10)]),  # contained
        ([(S, S + 10), (S + 10, S + 20)], [(S, S + 20)]),  # sharing a bound
        ([(S, S + 10), (S + 10.001, S + 20)], [(S, S + 20)]),  # the next millisecond: touching
        ([(S, S + 10.0004), (S + 10.0006, S + 20)], [(S, S + 20.0)]),  # no millisecond between them
        ([(S, S + 10), (S + 10.002, S + 20)], [(S, S + 10), (S + 10.002, S + 20)]),  # one ms apart
        ([(S, S + 10), (S + 11, S + 20)], [(S, S + 10), (S + 11, S + 20)]),  # a second apart
        ([(S, S + 10), (S + 20, S + 30), (S + 5, S + 25)], [(S, S + 30)]),  # a bridge joins all three
        ([(S + 7, S + 7)], [(S + 7, S + 7)]),  # a single instant
    ],
)
def test_overlapping_or_touching_windows_merge(data_dir, windows, expected):
    pending = PendingWindows(data_dir)
    for start, end in windows:
        pending.add(start, end)
    assert PendingWindows(data_dir).windows() == expected


def test_merged_windows_recover_exactly_their_own_entries(plugin, plex, data_dir, completed):
    """Two outages a second apart: an entry that failed between them belongs to neither."""
    insert_dlq_rows(
        data_dir / "dlq.db",
        [
            {"scene_id": 1, "failed_at": "2026-02-15 19:00:10"},  # S + 10: last second of the first outage
            {"scene_id": 2, "failed_at": "2026-02-15 19:00:10.500"},  # S + 10.5: between the two
            {"scene_id": 3, "failed_at": "2026-02-15 19:00:11"},  # S + 11: first second of the second
        ],
    )
    plex.up = False
    outage_ended.send("tracker", start=S, end=S + 10)
    outage_ended.send("tracker", start=S + 11, end=S + 20)
    plex.up = True
    plugin.retry_pending()
    assert _scenes(data_dir) == [1, 3]
    assert plugin.pending_windows() == []


def test_removing_a_window_leaves_the_others(data_dir):
    pending = PendingWindows(data_dir)
    pending.add(S, S + 10)
    pending.add(S + 100, S + 110)
    pending.remove(S, S + 10)
    assert pending.windows() == [(S + 100, S + 110)]


def test_a_window_that_cannot_be_unlisted_still_reports_its_completed_run(plugin, data_dir, add_entry, completed,
                                                                          failed, mocker):
    add_entry(5, failed_at=WINDOW_START + 1)
    mocker.patch.object(PendingWindows, "remove", side_effect=sqlite3.OperationalError("database is locked"))
    outage_ended.send(None, start=WINDOW_START, end=WINDOW_END)
    assert failed.calls == []
    assert [call["result"].recovered_scene_ids for call in completed.calls] == [[5]]
    assert [job["scene_id"] for job in drain(data_dir)] == [5]
