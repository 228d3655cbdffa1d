"""The first start catches up: outages that ended in the last days are recovered once, older ones are noted.

Through the one source of outages (``OutageSource.take_baseline``), the daemon's follower and
``RecoveryPlugin``, as every door does it; the hook's side is in ``tests/stash_plugin/test_catch_up.py``.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, recovery_completed
from plexsync_recovery_plugin.outages import CATCH_UP_DAYS, OutageSource
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.testing import StashTestServer
from plexsync_recovery_plugin.worker.history_follower import HistoryFollower
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.cli.conftest import REPO, assert_one_error_line, cli_env  # noqa: F401 - fixture
from tests.conftest import drain
from tests.worker.conftest import WATCH_TOKEN

DAY = 86400.0
NOW = time.time()
#: An outage that ended yesterday, and one ten days ago.
YESTERDAY = (NOW - DAY - 1800, NOW - DAY)
TEN_DAYS_AGO = (NOW - 10 * DAY - 1800, NOW - 10 * DAY)


def _history(plexsync_dir, *outages):
    plexsync_dir.write_outage_history([{"started_at": start, "ended_at": end} for start, end in outages])


def test_the_first_start_leaves_recent_outages_to_recover_and_notes_older_ones(data_dir, plexsync_dir, caplog):
    _history(plexsync_dir, TEN_DAYS_AGO, YESTERDAY)
    source = OutageSource(data_dir)

    with caplog.at_level(logging.INFO, logger="plexsync_recovery_plugin"):
        baseline = source.take_baseline(CATCH_UP_DAYS, now=NOW)

    assert baseline.taken and CATCH_UP_DAYS == 7
    assert [(o.started_at, o.ended_at) for o in baseline.catch_up] == [YESTERDAY]
    assert [(o.started_at, o.ended_at) for o in baseline.noted] == [TEN_DAYS_AGO]
    assert [(w.start, w.end) for w in source.unhandled()] == [YESTERDAY]
    [line] = [r.getMessage() for r in caplog.records if "first start" in r.getMessage()]
    assert "catching up on 1 outage that ended in the last 7 days; 1 outage older noted as handled" in line
    assert "--catch-up-days" in line and "catch_up_days" in line

    again = source.take_baseline(CATCH_UP_DAYS, now=NOW)
    assert not again.taken and [(w.start, w.end) for w in source.unhandled()] == [YESTERDAY]


def test_zero_days_notes_every_past_outage_and_a_negative_period_is_refused(data_dir, plexsync_dir):
    _history(plexsync_dir, TEN_DAYS_AGO, YESTERDAY)
    with pytest.raises(ValueError, match="-1"):
        OutageSource(data_dir).take_baseline(-1)
    with pytest.raises(ValueError, match="'7'"):
        HistoryFollower(data_dir, catch_up_days="7")

    baseline = OutageSource(data_dir).take_baseline(0, now=NOW)

    assert baseline.catch_up == () and len(baseline.noted) == 2 and "catch-up is off" in str(baseline)
    assert OutageSource(data_dir).unhandled() == []


class _OneTick:
    """A stop flag for ``WatchDaemon.run`` that lets exactly one tick through, whatever the clock says."""

    def __init__(self) -> None:
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > 1

    def wait(self, timeout: float | None = None) -> bool:
        return True


def test_the_daemons_first_start_recovers_yesterdays_outage_once(data_dir, plexsync_dir, add_entry, dlq, plex_server,
                                                                 stash):
    _history(plexsync_dir, TEN_DAYS_AGO, YESTERDAY)
    add_entry(1, failed_at=YESTERDAY[0] + 60)
    add_entry(2, failed_at=TEN_DAYS_AGO[0] + 60)
    plex = PlexConnection(plex_server.url, WATCH_TOKEN, timeout=1.0)
    results = []

    def heard(sender, *, result, **kwargs):
        results.append(result)

    try:
        with recovery_completed.connected_to(heard), RecoveryPlugin(dlq, None, stash, plex, data_dir) as plugin:
            WatchDaemon(plex, plugin, WatchSettings()).run(_OneTick())  # type: ignore[arg-type]
            assert [result.recovered_scene_ids for result in results] == [[1]]
            assert [job["scene_id"] for job in drain(data_dir)] == [1]

            WatchDaemon(plex, plugin, WatchSettings()).run(_OneTick())  # type: ignore[arg-type]  # the second start
            assert len(results) == 1
    finally:
        plex.close()


def test_watch_refuses_a_negative_catch_up_period(cli_env, data_dir):
    done = subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--data-dir", str(data_dir),
                           "--catch-up-days", "-1"], env=cli_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "--catch-up-days", "'-1'")


def test_watch_catches_up_on_its_first_start(cli_env, data_dir, plexsync_dir, add_entry, plex_server):
    _history(plexsync_dir, YESTERDAY)
    add_entry(3, failed_at=YESTERDAY[0] + 60)
    with StashTestServer(scenes=[3]) as stash_server:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--json", "--data-dir", str(data_dir),
             "--catch-up-days", "2", "--plex-url", plex_server.url, "--plex-token", WATCH_TOKEN, "--stash-url",
             stash_server.url, "--interval", "0.2"],
            env=cli_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        events: list[dict] = []
        completed = threading.Event()

        def read() -> None:
            for line in daemon.stdout:
                events.append(json.loads(line))
                if events[-1]["event"] == "recovery_completed":
                    completed.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert completed.wait(30), daemon.stderr.read() if daemon.poll() is not None else events
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(30)
            reader.join(10)
            stderr = daemon.stderr.read()
            daemon.stdout.close()
            daemon.stderr.close()
    assert code == 0, stderr
    [done] = [event for event in events if event["event"] == "recovery_completed"]
    assert done["result"]["recovered"] == 1
    assert "catching up on 1 outage that ended in the last 2 days" in stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [3]
