"""The watch daemon end to end: loopback Plex and Stash, the real plexapi and stashapi clients,
real DLQ and queue files. Probes are driven tick by tick with a controlled clock, except in
the free-running test, so the outage windows are exact."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, recovery_completed
from plexsync_recovery_plugin.outages import DetectedOutages, OutageSource
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.signals import outage_ended, outage_started
from plexsync_recovery_plugin.stash.connection import StashConnection
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.conftest import drain, wait_until
from tests.fakes import Clock
from tests.worker.conftest import T0, WATCH_TOKEN

TOKEN = WATCH_TOKEN




@pytest.fixture
def stash_server():
    with StashTestServer(scenes=range(1, 51)) as server:
        yield server


@pytest.fixture
def plex(plex_server):
    connection = PlexConnection(plex_server.url, TOKEN, timeout=1.0)
    yield connection
    connection.close()


@pytest.fixture
def stash(stash_server):
    connection = StashConnection(stash_server.url, timeout=5.0)
    yield connection
    connection.close()


@pytest.fixture
def plugin(dlq, queue, stash, plex, data_dir):
    return RecoveryPlugin(dlq, queue, stash, plex, data_dir)


@pytest.fixture
def results():
    seen = []

    def receiver(sender, *, result, start, end, **kwargs):
        seen.append((result, start, end))

    with recovery_completed.connected_to(receiver):
        yield seen


def tick(daemon: WatchDaemon, clock: Clock, count: int = 1, step: float = 5.0) -> None:
    for _ in range(count):
        daemon.tick()
        clock.now += step


def test_outage_detected_and_recovered_through_the_real_clients(
    plugin, plex, plex_server, stash_server, add_entry, data_dir, results
):
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin.connect(), WatchSettings(interval=5, fail_threshold=3, recover_threshold=2), clock=clock)
    windows = []
    with outage_ended.connected_to(lambda sender, **kw: windows.append((kw["start"], kw["end"]))):
        tick(daemon, clock, 2)  # up at T0, T0+5
        plex_server.set_mode("down")
        tick(daemon, clock, 3)  # fails at T0+10, +15, +20: outage dated from the last healthy probe, T0+5
        assert daemon.detector.in_outage
        add_entry(1, failed_at=T0 + 7)  # failed between the last healthy probe and the first failed one
        add_entry(2, failed_at=T0 + 19)
        add_entry(3, failed_at=T0 + 21)  # deleted from Stash below
        add_entry(4, failed_at=T0 + 4)  # before the outage
        stash_server.delete_scene(3)
        tick(daemon, clock, 2)  # still down at T0+25, T0+30
        plex_server.set_mode("up")
        tick(daemon, clock, 2)  # healthy at T0+35, T0+40: outage ends at T0+40
    plugin.disconnect()
    assert windows == [(T0 + 5, T0 + 40)]
    [(result, start, end)] = results
    assert (start, end) == (T0 + 5, T0 + 40)
    assert (result.total_dlq_entries, result.recovered, result.skipped_scene_missing) == (3, 2, 1)
    assert result.recovered_scene_ids == [1, 2]
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]
    # The daemon keeps its detections in the plugin's own state, never in PlexSync's history.
    assert not (data_dir / "outage_history.json").exists()
    assert OutageSource(data_dir).unhandled() == []  # handled: nothing left to send
    [outage] = DetectedOutages(data_dir).outages()
    assert (outage.started_at, outage.ended_at, outage.jobs_affected, outage.source) == (T0 + 5, T0 + 40, 3, "watch")


def test_flapping_plex_opens_no_outage(plugin, plex, plex_server, results):
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin, WatchSettings(fail_threshold=3, recover_threshold=2), clock=clock)
    started = []
    with outage_started.connected_to(lambda sender, **kw: started.append(kw)):
        for mode in ("down", "down", "up", "down", "up", "down", "down", "up"):
            plex_server.set_mode(mode)
            tick(daemon, clock)
    assert started == []
    assert results == []


def test_starting_plex_503_counts_as_down(plugin, plex, plex_server):
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin, WatchSettings(fail_threshold=2), clock=clock)
    plex_server.set_mode("starting")
    tick(daemon, clock, 2)
    assert daemon.detector.outage_start == T0


def test_outage_closed_by_another_process_while_plex_is_still_down_defers(
    plugin, plex, plex_server, add_entry, data_dir, results
):
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin.connect(), WatchSettings(fail_threshold=3), clock=clock)
    daemon.follower.start()
    add_entry(7, failed_at=T0 - 50)
    add_entry(8, failed_at=T0 - 40)
    plex_server.set_mode("down")
    # PlexSync's worker believes the outage is over and writes so in the shared history.
    (data_dir / "outage_history.json").write_text(
        json.dumps([{"started_at": T0 - 60, "ended_at": T0 - 30, "duration": 30.0, "jobs_affected": 2}])
    )
    tick(daemon, clock)
    [(result, start, end)] = results
    assert (start, end) == (T0 - 60, T0 - 30)
    assert (result.total_dlq_entries, result.skipped_plex_down, result.recovered) == (2, 2, 0)
    assert result.deferred is True
    assert drain(data_dir) == []
    assert plugin.pending_windows() == [(T0 - 60, T0 - 30)]
    # Plex comes back: the daemon retries the pending window by itself.
    plex_server.set_mode("up")
    tick(daemon, clock)
    plugin.disconnect()
    assert [r.recovered for r, _, _ in results] == [0, 2]
    assert plugin.pending_windows() == []
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [7, 8]


def test_token_never_reaches_the_logs(plugin, plex, plex_server, add_entry, caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin.connect(), WatchSettings(fail_threshold=1, recover_threshold=1), clock=clock)
    add_entry(1, failed_at=T0)
    plex_server.set_mode("down")
    tick(daemon, clock)
    plex_server.set_mode("up")
    tick(daemon, clock)
    plugin.disconnect()
    assert "recovered 1 of 1 DLQ entry" in caplog.text
    assert TOKEN not in caplog.text


def test_free_running_watch_started_while_plex_is_down(data_dir, dlq, queue, stash, add_entry, results):
    """Starts with Plex down, Plex comes up, goes down for a while, comes back: recovered on its own."""
    import time

    with PlexTestServer(token=TOKEN, initial_mode="down") as plex_server:
        plex = PlexConnection(plex_server.url, TOKEN, timeout=0.5)
        plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir)
        daemon = WatchDaemon(plex, plugin, WatchSettings(interval=0.05, fail_threshold=2, recover_threshold=2, probe_timeout=0.5))
        stop = threading.Event()
        runner = threading.Thread(target=daemon.run, args=(stop,))
        runner.start()
        try:
            assert wait_until(lambda: daemon.detector.in_outage, timeout=5)
            plex_server.set_mode("up")
            assert wait_until(lambda: len(results) == 1, timeout=5)  # the start-up outage ends (empty)
            assert results[0][0].total_dlq_entries == 0
            plex_server.set_mode("down")
            assert wait_until(lambda: daemon.detector.in_outage, timeout=5)
            add_entry(42, failed_at=time.time())
            plex_server.set_mode("up")
            assert wait_until(lambda: len(results) == 2, timeout=5)
        finally:
            stop.set()
            runner.join(5)
            plex.close()
        assert not runner.is_alive()
    assert results[1][0].recovered_scene_ids == [42]
    assert [job["scene_id"] for job in drain(data_dir)] == [42]


def test_outage_end_is_recovered_even_if_the_state_lost_its_record(plugin, plex, plex_server, add_entry, data_dir, results):
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin.connect(), WatchSettings(fail_threshold=1, recover_threshold=1), clock=clock)
    plex_server.set_mode("down")
    tick(daemon, clock)  # outage opens at T0
    add_entry(9, failed_at=T0 + 1)
    (data_dir / "recovery_state.db").unlink()  # the open record is gone
    plex_server.set_mode("up")
    tick(daemon, clock)
    plugin.disconnect()
    [(result, start, end)] = results
    assert (start, end) == (T0, T0 + 5)
    assert result.recovered_scene_ids == [9]
    assert [(o.started_at, o.ended_at) for o in DetectedOutages(data_dir).outages()] == [(T0, T0 + 5)]
