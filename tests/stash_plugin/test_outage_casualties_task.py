"""The recover task, run as Stash runs it, on the DLQ PlexSync's worker leaves during an outage.

By default it recovers the outage's ``PlexTemporaryError`` casualties (timeouts, 5xx, lost
connections) with ``PlexServerDown``; this plugin's ``no_outage_casualties`` setting leaves them.
"""

from __future__ import annotations

from tests.conftest import drain
from tests.plexsync_outage import add_outage_dlq
from tests.stash_plugin.conftest import OUTAGE, PLEX_TOKEN, write_history


def test_the_recover_task_recovers_an_outages_casualties_by_default(run_plugin, data_dir, plexsync_dir, plex_server):
    write_history(data_dir, OUTAGE)
    add_outage_dlq(plexsync_dir)  # scenes 1-10; this Stash has scenes 1-5

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 0, run.stderr
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3, 4, 5]  # 6 and 7 are gone from Stash
    assert any(text.startswith("left 1 PlexNotFound, 1 PlexPermanentError, 1 PlexTemporaryError in this window")
               for _, text in run.log)


def test_the_no_outage_casualties_setting_leaves_them(run_plugin, data_dir, plexsync_dir, stash_server, plex_server):
    write_history(data_dir, OUTAGE)
    add_outage_dlq(plexsync_dir)
    stash_server.set_plugin_settings("PlexSyncRecovery", {"no_outage_casualties": True})

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 0, run.stderr
    assert drain(data_dir) == []
    assert any("left 1 PlexNotFound, 1 PlexPermanentError, 8 PlexTemporaryError" in text for _, text in run.log)
    assert PLEX_TOKEN not in run.stderr
