"""The watch daemon is a front door: it counts an outage's entries with the plugin's selection and
logs a recovery with the result's own rendering."""

from __future__ import annotations

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.engine import RecoveryResult
from plexsync_recovery_plugin.outages import DetectedOutages
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings, describe_result
from tests.fakes import Clock
from tests.worker.conftest import T0, WATCH_TOKEN

TOKEN = WATCH_TOKEN



class AuthErrorsToo(RecoveryPlugin):
    """A plugin whose selection also takes ``PlexAuthError`` entries (what the daemon must not second-guess)."""

    @property
    def error_types(self) -> list[str]:
        return [*super().error_types, "PlexAuthError"]




def test_jobs_affected_is_the_size_of_the_plugins_own_selection(plex_server, stash, dlq, queue, data_dir, add_entry):
    plex = PlexConnection(plex_server.url, TOKEN, timeout=1.0)
    plugin = AuthErrorsToo(dlq, queue, stash, plex, data_dir)
    clock = Clock(T0)
    daemon = WatchDaemon(plex, plugin, WatchSettings(fail_threshold=1, recover_threshold=1), clock=clock)
    try:
        daemon.tick()  # up at T0
        plex_server.set_mode("down")
        clock.now += 5
        daemon.tick()  # outage opens, dated from T0
        add_entry(1, failed_at=T0 + 2)
        add_entry(2, failed_at=T0 + 3, error_type="PlexAuthError")  # only this plugin selects it
        add_entry(3, failed_at=T0 + 4, error_type="PlexTemporaryError")  # selected by nobody here
        plex_server.set_mode("up")
        clock.now += 5
        daemon.tick()  # outage ends at T0+10
    finally:
        daemon.detach()
        plex.close()
    [outage] = DetectedOutages(data_dir).outages()
    assert (outage.started_at, outage.ended_at) == (T0, T0 + 10)
    assert outage.jobs_affected == len(plugin.window_entries(T0, T0 + 10)) == 2


def test_describe_result_is_the_window_and_the_results_own_rendering():
    result = RecoveryResult(total_dlq_entries=5, recovered=2, skipped_already_queued=1, skipped_scene_missing=1,
                            skipped_plex_down=1, deferred=True)
    line = describe_result(result, T0, T0 + 30)
    assert line == f"outage 2026-05-28 20:26:40Z .. 2026-05-28 20:27:10Z: {result}"
    assert str(result) == ("recovered 2 of 5 DLQ entries (already queued 1, scene missing 1, stash error 0,"
                           " plex down 1, failed 0) - window kept pending for a retry")
