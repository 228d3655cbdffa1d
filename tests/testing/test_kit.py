"""The test kit's fixtures, used by this project's own tests (registered by tests/conftest.py or the entry point)."""

from __future__ import annotations

import pytest

from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.stash.connection import StashConnection
from plexsync_recovery_plugin.testing.kit import AllScenesStash

START = 1_771_182_000.0
END = START + 600


def test_an_outage_fired_at_a_plugin_recovers_its_window_and_is_recorded(
    plexsync_make_data_dir, plexsync_make_plugin, plexsync_fire_outage, plexsync_signals
):
    data = plexsync_make_data_dir()
    data.add_entry(1, failed_at=START + 10)
    data.add_entry(2, failed_at=START + 20, error_type="PlexAuthError")  # permanent: never recovered
    data.add_entry(3, failed_at=END + 60)  # after the outage
    data.add_entry(4, failed_at=START + 30)
    plugin = plexsync_make_plugin(data, stash=AllScenesStash(missing={4}))

    result = plexsync_fire_outage(plugin, START, END)

    assert (result.total_dlq_entries, result.recovered, result.skipped_scene_missing) == (2, 1, 1)
    assert data.queued_scene_ids() == {1}
    assert sorted(plexsync_signals.names()) == ["outage_ended", "recovery_completed", "recovery_progress"]
    assert plexsync_signals.results == [result] and plexsync_signals.errors == []
    assert not plugin.connected  # connected only for the call


def test_fire_outage_says_why_a_recovery_failed(plexsync_make_data_dir, plexsync_make_plugin, plexsync_fire_outage,
                                                plexsync_signals):
    data = plexsync_make_data_dir()
    data.dlq_path.write_bytes(b"this is not an SQLite database, not even close" * 10)
    with pytest.raises(AssertionError, match="did not complete"):
        plexsync_fire_outage(plexsync_make_plugin(data), START, END)
    assert sorted(plexsync_signals.names()) == ["outage_ended", "recovery_failed"]


def test_the_loopback_servers_behind_the_real_clients(
    plexsync_make_data_dir, plexsync_make_plugin, plexsync_fire_outage, plexsync_plex_server, plexsync_stash_server
):
    data = plexsync_make_data_dir()
    data.add_entry(5, failed_at=START + 1)
    data.add_entry(6, failed_at=START + 2)
    plexsync_stash_server.delete_scene(6)
    plex = PlexConnection(plexsync_plex_server.url, plexsync_plex_server.token, timeout=2)
    stash = StashConnection(plexsync_stash_server.url, timeout=5)
    try:
        result = plexsync_fire_outage(plexsync_make_plugin(data, plex=plex, stash=stash), START, END)
    finally:
        plex.close()
        stash.close()
    assert (result.recovered, result.skipped_scene_missing, result.recovered_scene_ids) == (1, 1, [5])
