"""``plexsync-recovery watch``: starts (even with Plex and Stash down), and stops cleanly on SIGTERM/SIGINT.

Time budget: each subprocess test runs about 1 s (probe interval 0.2 s), 5 s at worst.
"""

from __future__ import annotations

import signal
import threading
import time

from plexsync_recovery_plugin.cli.commands import SignalSafeEvent
from plexsync_recovery_plugin.outages import DetectedOutages
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import Daemon
from tests.conftest import wait_until


def test_sigterm_stops_the_daemon_cleanly(cli_env, data_dir):
    with PlexTestServer() as plex, StashTestServer() as stash:
        daemon = Daemon(cli_env, data_dir, "--plex-url", plex.url, "--plex-token", plex.token, "--stash-url", stash.url)
        daemon.wait_for("watching Plex every 0.2 s")
        daemon.wait_for("Plex is up")
        code = daemon.stop(signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in daemon.stderr
    assert "watch stopped" in daemon.stderr and "stopped by SIGTERM" in daemon.stderr


def test_daemon_keeps_running_while_plex_and_stash_are_down(cli_env, data_dir):
    with PlexTestServer(initial_mode="down") as plex, StashTestServer(initial_mode="down") as stash:
        daemon = Daemon(cli_env, data_dir, "--plex-url", plex.url, "--stash-url", stash.url, "--fail-threshold", "2")
        daemon.wait_for("outage started")
        code = daemon.stop(signal.SIGINT)
    assert code == 0
    assert "Traceback" not in daemon.stderr
    [outage] = DetectedOutages(data_dir).outages()
    assert outage.ongoing and outage.source == "watch"
    # The daemon never creates PlexSync's files: no history, no DLQ, no queue.
    assert sorted(path.name for path in data_dir.iterdir()) == ["queue", "recovery_state.db"]  # queue/: the fixture's
    assert daemon.stderr.count("there is no dlq.db in") == 1
    assert "stopped by SIGINT" in daemon.stderr


def test_bad_interval_is_a_usage_error(run_cli, data_dir):
    proc = run_cli("watch", "--data-dir", data_dir, "--interval", "-1")
    assert proc.returncode == 2
    assert "--interval: expected a positive number of seconds, got '-1'" in proc.stderr and "Traceback" not in proc.stderr


def test_signal_safe_event_wakes_a_waiter_from_a_signal_handler():
    event = SignalSafeEvent()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: event.set())
    rescued = threading.Event()

    def rescue() -> None:  # a hang guard, never the proof: had the signal not woken the waiter, this would
        rescued.set()
        event.set()

    watchdog = threading.Timer(60.0, rescue)
    # To the main thread, where the waiter sleeps (a signal sent to the process may land on any thread).
    sender = threading.Timer(0.05, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    try:
        watchdog.start()
        sender.start()
        assert event.wait() is True  # no timeout: only a wake-up ends this wait
        assert not rescued.is_set(), "the signal handler's set() did not wake the waiter"
        assert event.is_set()
        sender.join()
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGUSR1, previous)
        event.close()


def test_signal_safe_event_wait_times_out_unset():
    event = SignalSafeEvent()
    try:
        started = time.monotonic()
        assert event.wait(0.05) is False
        assert time.monotonic() - started >= 0.04
        assert not event.is_set()
    finally:
        event.close()


def test_an_outage_end_recovers_its_window_once(data_dir, dlq, queue, add_entry):
    """Guards the fix in worker/watch.py: with --recover-threshold 1 the ending tick used to recover twice."""
    from plexsync_recovery_plugin import PlexConnection, RecoveryPlugin, StashConnection, recovery_completed
    from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
    from tests.conftest import WINDOW_START

    runs = []
    with PlexTestServer() as plex, StashTestServer(scenes=[1], initial_mode="locked") as stash:
        connection = PlexConnection(plex.url, plex.token, timeout=2)
        plugin = RecoveryPlugin(dlq, queue, StashConnection(stash.url, timeout=2), connection, data_dir)
        now = [WINDOW_START]
        settings = WatchSettings(interval=1, fail_threshold=1, recover_threshold=1)
        daemon = WatchDaemon(connection, plugin, settings, clock=lambda: now[0])
        with plugin, recovery_completed.connected_to(lambda sender, **kw: runs.append(kw["result"]), sender=plugin):
            daemon.tick()  # Plex up
            plex.set_mode("down")
            now[0] = WINDOW_START + 10
            daemon.tick()  # the outage opens
            add_entry(1, failed_at=WINDOW_START + 12)
            plex.set_mode("up")
            now[0] = WINDOW_START + 20
            daemon.tick()  # it ends: one recovery, deferred because Stash is locked
    assert [(run.total_dlq_entries, run.skipped_stash_error, run.deferred) for run in runs] == [(1, 1, True)]


def test_a_rejected_token_is_reported_once_and_is_no_outage(cli_env, data_dir, dlq, queue):
    with PlexTestServer() as plex, StashTestServer() as stash:
        daemon = Daemon(cli_env, data_dir, "--plex-url", plex.url, "--plex-token", "not-the-token",
                        "--stash-url", stash.url, "--fail-threshold", "1")
        daemon.wait_for("rejected the token")
        probed = plex.request_count
        assert wait_until(lambda: plex.request_count >= probed + 5), daemon.stderr  # five more probes, all rejected
        code = daemon.stop(signal.SIGTERM)
    assert code == 0
    errors = [line for line in daemon.stderr.splitlines() if "rejected the token" in line]
    assert len(errors) == 1 and "PLEX_TOKEN" in errors[0] and "--plex-token" in errors[0]
    assert "not-the-token" not in daemon.stderr
    assert "outage started" not in daemon.stderr and DetectedOutages(data_dir).outages() == []


def test_the_retry_interval_is_a_flag_the_daemon_uses(monkeypatch, data_dir):
    from plexsync_recovery_plugin.cli import main
    from plexsync_recovery_plugin.worker.watch import WatchDaemon

    used = []
    monkeypatch.setattr(WatchDaemon, "run", lambda self, stop: used.append(self.settings.retry_interval))
    assert main(["watch", "--data-dir", str(data_dir), "--retry-interval", "7.5", "--no-subscribers"]) == 0
    assert main(["watch", "--data-dir", str(data_dir), "--no-subscribers"]) == 0
    assert used == [7.5, 60.0]


def test_the_daemon_log_shows_iso_utc_times(cli_env, data_dir):
    import re

    with PlexTestServer() as plex, StashTestServer() as stash:
        daemon = Daemon(cli_env, data_dir, "--plex-url", plex.url, "--plex-token", plex.token, "--stash-url", stash.url)
        daemon.wait_for("Plex is up")
        assert daemon.stop(signal.SIGTERM) == 0
    lines = [line for line in daemon.stderr.splitlines() if line.strip()]
    assert lines and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) ", line) for line in lines)
