"""The daemon's clock steps back while an outage lasts: the outage is recovered over every reading of
it (earliest to latest), with one warning, instead of failing as "start is after its end"."""

from __future__ import annotations

import logging

import pytest

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.outages import DetectedOutages
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.signals import outage_ended
from plexsync_recovery_plugin.worker.watch import OutageDetector, WatchDaemon, WatchSettings
from tests.conftest import drain
from tests.fakes import Clock
from tests.worker.conftest import T0, WATCH_TOKEN

HOUR = 3600.0


@pytest.fixture
def plex(plex_server):
    connection = PlexConnection(plex_server.url, WATCH_TOKEN, timeout=1.0)
    yield connection
    connection.close()


def test_the_detector_spans_every_reading_when_the_clock_steps_back():
    detector = OutageDetector(2, 2)
    detector.observe(100.0, True)
    detector.observe(105.0, False)
    assert detector.observe(110.0, False).start == 100.0  # opened, dated from the healthy probe at 100
    detector.observe(115.0, False)
    detector.observe(115.0 - HOUR, False)  # the clock stepped back an hour
    detector.observe(120.0 - HOUR, True)
    ended = detector.observe(125.0 - HOUR, True)
    assert (ended.start, ended.end) == (100.0, 125.0 - HOUR)
    assert ended.window == (115.0 - HOUR, 115.0) and ended.clock_stepped


def test_an_outage_the_clock_stepped_back_in_is_recovered_over_both_readings(
    dlq, queue, stash, plex, plex_server, data_dir, add_entry, caplog, completed, failed
):
    plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir).connect()
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin, WatchSettings(interval=5, fail_threshold=3, recover_threshold=2), clock=clock)
    sent = []
    caplog.set_level(logging.INFO, logger="plexsync_recovery_plugin")
    with outage_ended.connected_to(lambda sender, **kw: sent.append((kw["start"], kw["end"]))):
        daemon.tick()  # up at T0
        plex_server.set_mode("down")
        for at in (T0 + 5, T0 + 10, T0 + 15, T0 + 20):  # the outage opens at T0 + 15, dated from T0
            clock.now = at
            daemon.tick()
        add_entry(1, failed_at=T0 + 12)  # failed before the clock stepped back
        clock.now = T0 + 25 - HOUR  # the clock steps back an hour
        daemon.tick()
        add_entry(2, failed_at=T0 + 27 - HOUR)  # failed after it
        add_entry(3, failed_at=T0 + 40)  # after the outage by any reading: not in it
        plex_server.set_mode("up")
        for at in (T0 + 30 - HOUR, T0 + 35 - HOUR):
            clock.now = at
            daemon.tick()
    plugin.disconnect()

    window = (T0 + 25 - HOUR, T0 + 20)
    assert sent == [window]
    assert failed.calls == [] and len(completed.calls) == 1
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]
    [outage] = DetectedOutages(data_dir).outages()
    assert (outage.started_at, outage.ended_at, outage.jobs_affected) == (*window, 2)
    from plexsync_recovery_plugin.outages import OutageSource

    assert OutageSource(data_dir).unhandled() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "ended" in r.getMessage()]
    assert len(warnings) == 1 and "stepped back" in warnings[0], warnings
    assert not any("after -" in r.getMessage() for r in caplog.records)
