"""The hook's first start catches up, as Stash runs it: yesterday's outage is recovered once, older ones are not.

The catch-up period is the plugin's ``catch_up_days`` setting (7 when not set, 0: off), read
from Stash like every other setting; the outages and what is handled come from the one source
of outages, the recovery from the same API the tasks and the daemon use.
"""

from __future__ import annotations

import time

from tests.conftest import drain
from tests.stash_plugin.conftest import PLEX_TOKEN, write_history

SCENE_UPDATE = "Scene.Update.Post"
DAY = 86400.0
NOW = time.time()
YESTERDAY = (NOW - DAY - 1800, NOW - DAY)
TEN_DAYS_AGO = (NOW - 10 * DAY - 1800, NOW - 10 * DAY)


def test_the_first_hook_recovers_yesterdays_outage_once(run_plugin, data_dir, add_entry, stash_server):
    write_history(data_dir, TEN_DAYS_AGO, YESTERDAY)
    add_entry(1, failed_at=YESTERDAY[0] + 60)
    add_entry(2, failed_at=TEN_DAYS_AGO[0] + 60)

    first = run_plugin(hook=SCENE_UPDATE)

    assert first.code == 0 and first.answer == {"output": "1 outage recovered", "error": None}, first.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]
    said = " ".join(first.texts("i"))
    assert "catching up on 1 outage that ended in the last 7 days; 1 outage older noted as handled" in said
    assert "1 job recovered" in said

    second = run_plugin(hook=SCENE_UPDATE)
    assert second.answer == {"output": "nothing new", "error": None}
    assert drain(data_dir) == []


def test_catch_up_days_zero_turns_it_off(run_plugin, data_dir, add_entry, stash_server, plex_server):
    stash_server.set_plugin_settings("PlexSyncRecovery", {"catch_up_days": 0})
    write_history(data_dir, YESTERDAY)
    add_entry(1, failed_at=YESTERDAY[0] + 60)

    first = run_plugin(hook=SCENE_UPDATE)

    assert first.answer == {"output": "no outage ended since the last check", "error": None}, first.stderr
    assert any("catch-up is off; 1 outage already over noted as handled" in line for line in first.texts("i"))
    assert drain(data_dir) == []


def test_a_longer_catch_up_reaches_further_back(run_plugin, data_dir, add_entry, stash_server):
    stash_server.set_plugin_settings("PlexSyncRecovery", {"catch_up_days": 30})
    write_history(data_dir, TEN_DAYS_AGO)
    add_entry(2, failed_at=TEN_DAYS_AGO[0] + 60)

    assert run_plugin(hook=SCENE_UPDATE).answer["output"] == "1 outage recovered"
    assert [job["scene_id"] for job in drain(data_dir)] == [2]


def test_a_bad_catch_up_setting_keeps_the_outage_pending_and_says_which_setting(run_plugin, data_dir, add_entry,
                                                                                stash_server):
    stash_server.set_plugin_settings("PlexSyncRecovery", {"catch_up_days": -3})
    write_history(data_dir, YESTERDAY)
    add_entry(1, failed_at=YESTERDAY[0] + 60)

    first = run_plugin(hook=SCENE_UPDATE)

    assert first.code == 0 and first.answer["error"] is None
    [line] = first.texts("e")
    assert "catch_up_days" in line and "-3" in line and "stays pending" in line
    assert drain(data_dir) == []

    stash_server.set_plugin_settings("PlexSyncRecovery", {})
    retried = run_plugin(mode="retry_pending")
    assert retried.answer["output"] == "retry: 1 job recovered; 0 windows pending", retried.stderr


def test_a_first_hook_with_nothing_over_asks_stash_nothing(run_plugin, data_dir, stash_server):
    write_history(data_dir, (NOW - 60, None))  # an outage under way: nothing to catch up
    stash_server.reset_counts()

    first = run_plugin(hook=SCENE_UPDATE)

    assert first.answer == {"output": "no outage ended since the last check", "error": None}
    assert sum(stash_server.operation_counts.values()) == 0
    assert PLEX_TOKEN not in first.stderr


def test_the_settings_default_is_the_one_catch_up_period():
    from plexsync_recovery_plugin.outages import CATCH_UP_DAYS
    from plexsync_recovery_plugin.stash_plugin.protocol import RecoverySettings

    assert RecoverySettings("http://plex:32400", "token-12345678").catch_up_days == CATCH_UP_DAYS
