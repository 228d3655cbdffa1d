"""The hook, run as Stash runs it on a scene update: recovers an outage that ended since the last
check, once; costs nothing (no request, no lock, no heavy import) when nothing is new."""

from __future__ import annotations

import os
import shutil

from plexsync_recovery_plugin.outages import OutageSource
from plexsync_recovery_plugin.state import PendingWindows
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.stash_plugin.conftest import OUTAGE, write_history

SCENE_UPDATE = "Scene.Update.Post"
HEAVY_MODULES = ("plexapi", "stashapi", "requests", "persistqueue", "graphql")


def _imported(stderr: str) -> set[str]:
    """Top-level names of the modules ``python -X importtime`` reports."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def _first_check(run_plugin, data_dir):
    """The hook's first call takes the history as its baseline (old outages are not recovered)."""
    run = run_plugin(hook=SCENE_UPDATE)
    assert run.code == 0 and run.answer["error"] is None, run.stderr
    return run


def test_an_outage_that_ended_since_the_last_check_is_recovered_once(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir, (WINDOW_START, None))  # PlexSync: Plex is down
    add_entry(1, failed_at=WINDOW_START + 5)
    add_entry(2, failed_at=WINDOW_START + 6)
    _first_check(run_plugin, data_dir)
    assert drain(data_dir) == []

    write_history(data_dir, OUTAGE)  # PlexSync: the outage is over
    run = run_plugin(hook="Scene.Create.Post")

    assert run.code == 0, run.stderr
    assert run.answer == {"output": "1 outage recovered", "error": None}
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]
    assert any("2 jobs recovered" in line for line in run.texts("i"))

    again = run_plugin(hook=SCENE_UPDATE)
    assert again.answer["output"] == "nothing new"
    assert drain(data_dir) == []


def test_nothing_new_asks_nobody_takes_no_lock_and_imports_no_client(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)
    _first_check(run_plugin, data_dir)  # the outage was over before the plugin came: baseline
    lock = data_dir / "recovery.lock"
    lock_before = lock.stat().st_mtime_ns if lock.exists() else None
    requests_before = plex_server.request_count, stash_server.request_count
    files_before = sorted(path.name for path in data_dir.iterdir())

    run = run_plugin(hook=SCENE_UPDATE, python_flags=("-X", "importtime"))

    assert run.code == 0
    assert run.answer == {"output": "nothing new", "error": None}
    assert (plex_server.request_count, stash_server.request_count) == requests_before
    assert (lock.stat().st_mtime_ns if lock.exists() else None) == lock_before
    assert sorted(path.name for path in data_dir.iterdir()) == files_before  # no DLQ or queue opened
    imported = _imported(run.stderr)
    assert "plexsync_recovery_plugin" in imported
    assert imported.isdisjoint(HEAVY_MODULES), imported & set(HEAVY_MODULES)
    assert drain(data_dir) == []


def test_a_history_rewrite_without_a_new_end_recovers_nothing(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)
    _first_check(run_plugin, data_dir)
    write_history(data_dir, OUTAGE, (WINDOW_END + 600, None))  # a new outage started: nothing ended
    requests_before = plex_server.request_count, stash_server.request_count

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.answer["output"] == "no outage ended since the last check"
    assert (plex_server.request_count, stash_server.request_count) == requests_before
    assert drain(data_dir) == []


def test_plex_down_leaves_the_window_pending_and_the_hook_exits_cleanly(
    run_plugin, data_dir, add_entry, plex_server, stash_server
):
    write_history(data_dir, (WINDOW_START, None))
    add_entry(3, failed_at=WINDOW_START + 5)
    _first_check(run_plugin, data_dir)
    write_history(data_dir, OUTAGE)
    plex_server.set_mode("down")

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer["error"] is None
    assert run.non_protocol_lines() == []
    assert any("stays pending" in line for line in run.texts("w"))
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]
    assert drain(data_dir) == []
    # Within the retry interval the next scene update does not probe Plex again.
    plex_server.set_mode("up")
    requests_before = plex_server.request_count
    assert run_plugin(hook=SCENE_UPDATE).answer["output"] == "nothing new"
    assert plex_server.request_count == requests_before


def test_a_failing_hook_never_fails_the_scene_update(run_plugin, data_dir, add_entry, stash_server):
    write_history(data_dir, (WINDOW_START, None))
    add_entry(1, failed_at=WINDOW_START + 5)
    _first_check(run_plugin, data_dir)
    write_history(data_dir, OUTAGE)
    stash_server.set_plugin_settings("Stash2Plex", None)  # PlexSync not configured

    run = run_plugin(hook=SCENE_UPDATE)

    assert run.code == 0 and run.answer["error"] is None
    errors = run.texts("e")
    assert len(errors) == 1 and "plex_url" in errors[0] and "stays pending" in errors[0], run.stderr
    assert run.non_protocol_lines() == []
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]


def test_unreadable_input_and_a_missing_package_are_one_log_line(run_plugin, plugin_env, data_dir):
    bad = run_plugin(payload="not json")
    assert bad.code == 1 and len(bad.texts("e")) == 1 and "not JSON" in bad.texts("e")[0]
    assert bad.non_protocol_lines() == []

    # The plugin's own copy gone, no site-packages (-S) and PYTHONPATH dropped: the package cannot be imported.
    shutil.rmtree(data_dir.parents[1] / "PlexSyncRecovery" / "plexsync_recovery_plugin")
    plugin_env.pop("PYTHONPATH")
    missing = run_plugin(hook=SCENE_UPDATE, python_flags=("-S",))
    assert missing.code == 0 and missing.answer["error"] is None
    [line] = missing.texts("e")
    assert "code is missing" in line and "install the plugin again" in line
    assert "pip install" not in line  # this package is not on PyPI: no such advice
    assert missing.non_protocol_lines() == []


def test_pending_windows_are_retried_at_most_once_per_interval(data_dir):
    from plexsync_recovery_plugin.stash_plugin.hook import RETRY_PENDING_SECONDS, HookMarker, check_for_work

    write_history(data_dir, OUTAGE)
    first = check_for_work(data_dir, now=1000.0)
    assert first.first_check and first.ended == [] and not first.retry_due
    assert not OutageSource(data_dir).baseline_taken()  # the first start decides, with the catch-up setting
    HookMarker(data_dir).write(first.marker)
    assert check_for_work(data_dir, now=1000.0 + RETRY_PENDING_SECONDS) is None  # no pending window

    PendingWindows(data_dir).add(WINDOW_START, WINDOW_END)
    assert check_for_work(data_dir, now=1000.0 + RETRY_PENDING_SECONDS - 1) is None
    due = check_for_work(data_dir, now=1000.0 + RETRY_PENDING_SECONDS)
    assert due.retry_due and due.ended == [] and due.marker.retried_at == 1000.0 + RETRY_PENDING_SECONDS


def test_only_outages_not_handled_yet_count(data_dir):
    from plexsync_recovery_plugin.stash_plugin.hook import HookMarker, check_for_work
    from plexsync_recovery_plugin.stash_plugin.tasks import first_start, note_outage_handled

    older = (WINDOW_START - 7200, WINDOW_START - 3600)
    write_history(data_dir, older, (WINDOW_START, None))
    HookMarker(data_dir).write(check_for_work(data_dir, now=0.0).marker)
    first_start(data_dir, catch_up_days=0)  # what the hook's first start does with the catch-up off
    later = (WINDOW_END + 600, WINDOW_END + 900)
    write_history(data_dir, older, OUTAGE, later)

    found = check_for_work(data_dir, now=1.0)

    assert found.ended == [OUTAGE, later]
    HookMarker(data_dir).write(found.marker)
    for start, end in found.ended:  # what the hook does once it recovered them
        note_outage_handled(data_dir, start, end)
    os.utime(data_dir / "outage_history.json", ns=(1, 1))  # rewritten, same content
    touched = check_for_work(data_dir, now=2.0)
    assert touched.ended == [] and not touched.first_check
