"""The watch daemon in the states a real install meets: a token Plex rejects, no ``dlq.db`` yet,
long runs of the same state (logged once). Loopback Plex and Stash, the real clients, ticks
driven by hand with a controlled clock."""

from __future__ import annotations

import logging

import pytest

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.outages import DetectedOutages
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.signals import outage_ended, outage_started, recovery_completed
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqUnavailable
from plexsync_recovery_plugin.sync_queue.operations import make_job, open_queue
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.conftest import drain
from tests.fakes import Clock
from tests.worker.conftest import T0, WATCH_TOKEN

TOKEN = WATCH_TOKEN
HINT = "set a valid Plex token with PLEX_TOKEN or --plex-token"
PACKAGE = "plexsync_recovery_plugin"





@pytest.fixture
def signals_seen():
    seen = []
    with outage_started.connected_to(lambda sender, **kw: seen.append(("started", kw["start"]))), \
            outage_ended.connected_to(lambda sender, **kw: seen.append(("ended", kw["start"], kw["end"]))), \
            recovery_completed.connected_to(lambda sender, **kw: seen.append(("recovered", kw["result"]))):
        yield seen


def ticks(daemon: WatchDaemon, clock: Clock, count: int, step: float = 5.0) -> None:
    for _ in range(count):
        daemon.tick()
        clock.now += step


def package_records(caplog, level=logging.INFO):
    return [r for r in caplog.records if r.name.startswith(PACKAGE) and r.levelno >= level]


def test_a_rejected_token_opens_no_outage_and_retries_nothing(
    plex_server, stash, dlq, queue, data_dir, add_entry, signals_seen, caplog
):
    caplog.set_level(logging.INFO, logger=PACKAGE)
    add_entry(1, failed_at=T0 - 100)
    PendingWindows(data_dir).add(T0 - 120, T0 - 60)  # left pending by an earlier run
    plex_server.set_mode("revoked")
    plex = PlexConnection(plex_server.url, TOKEN, timeout=1.0)
    clock = Clock(T0)
    settings = WatchSettings(fail_threshold=2, recover_threshold=1, retry_interval=1, token_hint=HINT)
    try:
        with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin:
            daemon = WatchDaemon(plex, plugin, settings, clock=clock)
            ticks(daemon, clock, 6)
            assert not daemon.detector.in_outage
            assert DetectedOutages(data_dir).outages() == []
            assert plugin.pending_windows() == [(T0 - 120, T0 - 60)]
            assert signals_seen == []
            errors = [r.getMessage() for r in package_records(caplog, logging.ERROR)]
            assert len(errors) == 1, errors
            assert "rejected the token" in errors[0] and "PLEX_TOKEN" in errors[0] and "--plex-token" in errors[0]
            assert TOKEN not in caplog.text
            # The token is accepted again: the pending window is retried at once, no outage was ever opened.
            plex_server.set_mode("up")
            ticks(daemon, clock, 1)
    finally:
        plex.close()
    assert [event[0] for event in signals_seen] == ["recovered"]
    assert signals_seen[0][1].recovered_scene_ids == [1]
    assert PendingWindows(data_dir).windows() == []


def test_plex_states_are_logged_once_per_change_and_every_probe_at_debug(plex_server, plugin_with_real_plex, caplog):
    plugin, plex, data_dir = plugin_with_real_plex
    caplog.set_level(logging.DEBUG, logger=PACKAGE)
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin, WatchSettings(fail_threshold=3, recover_threshold=2), clock=clock)
    ticks(daemon, clock, 3)  # up
    plex_server.set_mode("down")
    ticks(daemon, clock, 6)  # down: the outage opens at the 3rd failed probe
    plex_server.set_mode("up")
    ticks(daemon, clock, 4)  # up: it closes at the 2nd healthy probe
    messages = [r.getMessage() for r in package_records(caplog) if r.name.endswith("worker.watch")]
    assert [m.split(" (")[0] for m in messages] == [
        "Plex is up",
        "Plex is not answering",
        "Plex outage started at 2026-05-28T20:26:50Z",
        "Plex is up",
        "Plex outage ended at 2026-05-28T20:27:30Z after 40.0 s",
    ]
    assert "(dated from the last healthy probe)" in messages[2]
    probes = [r for r in caplog.records if r.levelno == logging.DEBUG and r.getMessage().startswith("probe at ")]
    assert len(probes) == 13
    assert probes[0].getMessage().startswith("probe at 2026-05-28T20:26:40Z: up")


@pytest.fixture
def plugin_with_real_plex(plex_server, stash, dlq, queue, data_dir):
    plex = PlexConnection(plex_server.url, TOKEN, timeout=1.0)
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin:
        yield plugin, plex, data_dir
    plex.close()


def test_without_dlq_db_the_daemon_watches_waits_and_recovers_once_it_appears(
    plex_server, stash, data_dir, signals_seen, caplog
):
    caplog.set_level(logging.INFO, logger=PACKAGE)
    open_queue(data_dir).close()  # PlexSync's queue/ is there; dlq.db is not (yet)
    plex = PlexConnection(plex_server.url, TOKEN, timeout=1.0)
    opened = []

    def open_plugin():
        if not (data_dir / "dlq.db").exists():
            raise DlqUnavailable(f"there is no dlq.db in {data_dir} yet")
        queue = open_queue(data_dir)
        opened.append(queue)
        return RecoveryPlugin(DeadLetterQueue(data_dir), queue, stash, plex, data_dir)

    clock = Clock(T0)
    daemon = WatchDaemon(plex, open_plugin, WatchSettings(fail_threshold=1, recover_threshold=1), clock=clock,
                         data_dir=data_dir)
    try:
        ticks(daemon, clock, 2)  # up
        plex_server.set_mode("down")
        ticks(daemon, clock, 2)  # the outage opens, dated T0 + 5
        plex_server.set_mode("up")
        ticks(daemon, clock, 2)  # it ends at T0 + 20: nothing can recover it yet
        assert not (data_dir / "dlq.db").exists()  # never created by the daemon
        assert [e for e in signals_seen if e[0] != "started"] == []
        # PlexSync starts, creates its DLQ and dead-letters a job that failed in the outage.
        PlexSyncData(data_dir).add_dead_letter(make_job(4, "metadata", {}), failed_at=T0 + 8)
        ticks(daemon, clock, 1)
    finally:
        daemon.detach()
        for queue in opened:
            queue.close()
        plex.close()
    waits = [r.getMessage() for r in package_records(caplog) if "there is no dlq.db" in r.getMessage()]
    assert len(waits) == 1
    assert ("ended", T0 + 5, T0 + 20) in signals_seen
    [result] = [event[1] for event in signals_seen if event[0] == "recovered"]
    assert result.recovered_scene_ids == [4]
    assert [job["scene_id"] for job in drain(data_dir)] == [4]
