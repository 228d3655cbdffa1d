"""A refused credential, met by the tasks and the hook as Stash runs them: a configuration error, said so.

A Plex token Plex refuses is not an outage: the task fails (``error`` set) naming the setting
to fix, the hook says it in one error line and exits 0, and the window is kept for the run
made once the token is fixed. A session cookie Stash refuses is named as such, not as an API key.
"""

from __future__ import annotations

from plexsync_recovery_plugin.state import PendingWindows
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.stash_plugin.conftest import OUTAGE, PLEX_TOKEN, plugin_input, write_history

SCENE_UPDATE = "Scene.Update.Post"
WRONG_TOKEN = "not-the-plex-token-4d2e"


def _refuse_the_token(stash_server, plex_server):
    stash_server.set_plugin_settings("Stash2Plex", {"plex_url": plex_server.url, "plex_token": WRONG_TOKEN})


def _assert_names_the_token_setting(text: str, plex_server) -> None:
    assert f"Plex at {plex_server.url} answered 401/403: it rejected the token" in text
    assert "plex_token" in text and "Stash2Plex's plugin settings" in text
    assert "<html>" not in text and WRONG_TOKEN not in text


def test_preview_with_a_refused_token_fails_naming_the_setting(run_plugin, data_dir, add_entry, stash_server, plex_server):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 1)
    _refuse_the_token(stash_server, plex_server)

    run = run_plugin(mode="preview_last_outage")

    assert run.code == 1 and run.answer["output"] is None
    _assert_names_the_token_setting(run.answer["error"], plex_server)
    assert not any("plex down" in line.lower() for line in run.texts())  # no entry is blamed on an outage
    assert run.non_protocol_lines() == []


def test_recover_with_a_refused_token_fails_naming_the_setting_and_keeps_the_window(
    run_plugin, data_dir, add_entry, stash_server, plex_server
):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 1)
    _refuse_the_token(stash_server, plex_server)

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 1 and run.answer["output"] is None
    _assert_names_the_token_setting(run.answer["error"], plex_server)
    assert drain(data_dir) == []
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]  # for the run once it is fixed

    stash_server.set_plugin_settings("Stash2Plex", {"plex_url": plex_server.url, "plex_token": PLEX_TOKEN})
    fixed = run_plugin(mode="retry_pending")
    assert fixed.code == 0, fixed.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1] and PendingWindows(data_dir).windows() == []


def test_the_hook_says_a_refused_token_in_one_error_line_and_exits_0(
    run_plugin, data_dir, add_entry, stash_server, plex_server
):
    write_history(data_dir, (WINDOW_START, None))
    add_entry(1, failed_at=WINDOW_START + 5)
    assert run_plugin(hook=SCENE_UPDATE).code == 0  # the first check: the baseline
    write_history(data_dir, OUTAGE)
    _refuse_the_token(stash_server, plex_server)

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer["error"] is None, run.stderr
    errors = run.texts("e")
    assert len(errors) == 1, errors
    [error] = errors
    _assert_names_the_token_setting(error, plex_server)
    assert run.non_protocol_lines() == []
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]


def test_a_refused_session_cookie_names_the_session_not_an_api_key(run_plugin, data_dir, stash_server, plugins_dir):
    write_history(data_dir, OUTAGE)
    payload = plugin_input(stash_server, plugins_dir, mode="recover_last_outage")
    payload["server_connection"]["SessionCookie"]["Value"] = "c3RhbGUtc2Vzc2lvbi1jb29raWU="  # a stale session

    run = run_plugin(payload=payload)

    assert run.code == 1
    error = run.answer["error"]
    assert f"Stash at {stash_server.url.rsplit('/', 1)[0]} rejected the Stash session (HTTP 401" in error
    assert "API key" not in error and "reload Stash" in error
    assert "c3RhbGUtc2Vzc2lvbi1jb29raWU=" not in run.stdout + run.stderr


def _own_settings(stash_server, **values):
    stash_server.set_plugin_settings("PlexSyncRecovery", values)


def test_the_request_timeout_setting_bounds_a_trickling_stash(run_plugin, data_dir, add_entry, stash_server):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 1)
    _own_settings(stash_server, request_timeout=1)
    stash_server.trickle_interval = 0.5
    stash_server.set_mode("trickle")  # its answers about scenes come one byte every 0.5 s

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 1 and run.answer["error"], run.stderr  # the task fails: its window is left pending
    assert any("no complete answer within 1 s" in line for line in run.texts())
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)] and drain(data_dir) == []


def test_a_bad_request_timeout_setting_is_named(run_plugin, data_dir, stash_server):
    write_history(data_dir, OUTAGE)
    _own_settings(stash_server, request_timeout=-5)

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 1
    assert run.answer["error"].startswith("setting request_timeout (Request timeout) must be a positive number")
