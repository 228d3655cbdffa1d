"""``recovery.lock``: a bounded wait that names who holds it, and never a symbolic link followed."""

from __future__ import annotations

import os
import socket

import pytest

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.state import (
    LOCK_FILE_NAME,
    PendingWindows,
    RecoveryLockBusy,
    RecoveryLockRefused,
    recovery_lock,
)
from tests.cli.conftest import RunCli, assert_one_error_line, cli_env, run_cli  # noqa: F401 (fixtures)
from tests.conftest import WINDOW_END, WINDOW_START, drain

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]


def test_a_second_recover_waits_a_bounded_time_and_names_the_holder(run_cli: RunCli, data_dir, add_entry):
    add_entry(1, failed_at=WINDOW_START + 5)
    (data_dir / "queue").mkdir(exist_ok=True)
    with recovery_lock(data_dir):  # this test process is the holder, as another recovery would be
        done = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--lock-wait", "0.5",
                       "--plex-url", "http://127.0.0.1:9", "--stash-url", "http://127.0.0.1:9")
    assert done.returncode == 1
    holder = f"{data_dir / LOCK_FILE_NAME} is held by pid {os.getpid()} on {socket.gethostname()}"
    assert_one_error_line(done.stderr, holder, "gave up after waiting 0.5 s")
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]  # kept for the next run
    assert drain(data_dir) == []


def test_a_run_that_cannot_get_the_lock_keeps_its_window_pending(dlq, queue, stash, plex, data_dir, add_entry):
    add_entry(1, failed_at=WINDOW_START + 5)
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir, lock_wait=0.05) as plugin:
        with recovery_lock(data_dir):
            [run] = plugin.recover(WINDOW_START, WINDOW_END)
        assert isinstance(run.error, RecoveryLockBusy) and f"pid {os.getpid()}" in str(run.error)
        assert plugin.pending_windows() == [(WINDOW_START, WINDOW_END)]
        [later] = plugin.retry_pending()  # once the lock is free, the window is recovered
    assert later.result is not None and later.result.recovered == 1
    assert [job["scene_id"] for job in drain(data_dir)] == [1]


def test_a_lock_file_planted_as_a_symlink_is_refused_and_never_followed(dlq, queue, stash, plex, data_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data_dir / LOCK_FILE_NAME).symlink_to(outside / "victim")
    with pytest.raises(RecoveryLockRefused, match="symbolic link"):
        with recovery_lock(data_dir):
            pass
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin:
        [run] = plugin.recover(WINDOW_START, WINDOW_END)
    assert isinstance(run.error, RecoveryLockRefused) and str(data_dir / LOCK_FILE_NAME) in str(run.error)
    assert list(outside.iterdir()) == []  # nothing created through the link
