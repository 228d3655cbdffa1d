"""The hook, run as Stash runs it, asks the one source of outages: a breaker chain is one outage,
and an outage recorded while the clock ran ahead hides no later one (handled is kept per outage)."""

from __future__ import annotations

import os

from plexsync_recovery_plugin.testing import StashTestServer
from tests.cli.conftest import RunCli, cli_env, run_cli, server_flags  # noqa: F401 (fixtures)
from tests.conftest import WINDOW_START, drain
from tests.stash_plugin.conftest import write_history

SCENE_UPDATE = "Scene.Update.Post"
T1, T2, T3, T4 = WINDOW_START, WINDOW_START + 60, WINDOW_START + 120, WINDOW_START + 150
HOUR = 3600.0


def _first_check(run_plugin):
    run = run_plugin(hook=SCENE_UPDATE)
    assert run.code == 0 and run.answer["error"] is None, run.stderr
    return run


def test_a_breaker_chain_is_one_outage_and_every_entry_of_it_is_requeued_once(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir, (T1, None))  # PlexSync's breaker opened
    _first_check(run_plugin)
    add_entry(1, failed_at=T1 + 5)
    add_entry(2, failed_at=T2 + 5)
    add_entry(3, failed_at=T3 + 5)
    # The breaker reopened from half-open at T2 and T3 (a new open record each time), then closed.
    write_history(data_dir, (T1, None), (T2, None), (T3, T4))

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer == {"output": "1 outage recovered", "error": None}, run.stderr
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]
    again = run_plugin(hook=SCENE_UPDATE)
    assert again.answer["output"] == "nothing new"
    os.utime(data_dir / "outage_history.json", ns=(1, 1))  # rewritten, same records
    touched = run_plugin(hook=SCENE_UPDATE)
    assert touched.answer["output"] == "no outage ended since the last check"
    assert drain(data_dir) == []


def test_an_outage_recorded_an_hour_ahead_does_not_hide_a_real_later_one(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir)  # PlexSync installed, no outage yet
    _first_check(run_plugin)
    ahead = (T1 + HOUR, T1 + HOUR + 100)  # recorded while the clock ran an hour ahead
    add_entry(1, failed_at=ahead[0] + 5)
    write_history(data_dir, ahead)
    first = run_plugin(hook=SCENE_UPDATE)
    assert first.answer["output"] == "1 outage recovered", first.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]

    # The clock was put right; a real outage happens later, dated before the one above ended.
    later = (T1 + 600, T1 + 900)
    add_entry(2, failed_at=later[0] + 5)
    write_history(data_dir, ahead, later)
    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer == {"output": "1 outage recovered", "error": None}, run.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [2]


def test_an_outage_recovered_from_the_command_line_is_handled_for_the_hook(
    run_plugin, run_cli: RunCli, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir)
    _first_check(run_plugin)
    add_entry(1, failed_at=T1 + 5)
    write_history(data_dir, (T1, T4))
    with StashTestServer(scenes=[1]) as stash_for_the_cli:  # the CLI's own Stash access (the hook's needs a session)
        done = run_cli("recover", "--last-outage", "--data-dir", data_dir, *server_flags(plex_server, stash_for_the_cli))
    assert done.returncode == 0, done.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer == {"output": "no outage ended since the last check", "error": None}, run.stderr
    assert drain(data_dir) == []
