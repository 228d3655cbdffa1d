"""Configuration errors are one line and exit 2: a directory that is not PlexSync's, a rejected Stash key."""

from __future__ import annotations

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.testing import StashTestServer
from tests.cli.conftest import assert_one_error_line
from tests.conftest import WINDOW_START, drain

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_START + 1800)]
STASH_KEY = "stash-right-key-0a1b2c"

COMMANDS = {
    "recover": ["recover", *WINDOW],
    "recover --dry-run": ["recover", *WINDOW, "--dry-run"],
    "dlq": ["dlq"],
    "outages": ["outages"],
    "watch": ["watch", "--interval", "0.1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_directory_that_is_not_plexsyncs_is_refused(capsys, monkeypatch, tmp_path, command, how):
    stranger = tmp_path / "not-plexsync"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine\n")
    if how == "flag":
        argv = [*COMMANDS[command], "--data-dir", str(stranger)]
    else:
        monkeypatch.setenv("STASH_PLUGIN_DATA", str(stranger))
        argv = COMMANDS[command]
    assert main(argv) == 2
    line = assert_one_error_line(capsys.readouterr().err, repr(str(stranger)), "dlq.db", "queue/")
    assert "not PlexSync's" in line
    assert sorted(path.name for path in stranger.iterdir()) == ["notes.txt"]  # nothing was created in it


def test_a_directory_with_only_dlq_db_is_accepted(capsys, tmp_path):
    PlexSyncData(tmp_path).create_dlq()  # dlq.db as PlexSync creates it; no queue/
    assert main(["dlq", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("DLQ entries by error type")


@pytest.fixture
def locked_stash():
    with StashTestServer(api_key=STASH_KEY, scenes=[1, 2]) as server:
        yield server


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_rejected_stash_key_is_one_line_naming_the_key_and_exit_2(
    capsys, data_dir, add_entry, plex_server, locked_stash, dry_run
):
    add_entry(1)
    add_entry(2)
    flags = ["--plex-url", plex_server.url, "--plex-token", plex_server.token, "--stash-url", locked_stash.url]
    argv = ["recover", *WINDOW, *dry_run, "--data-dir", str(data_dir), *flags, "--stash-api-key", "a-wrong-key-123"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = assert_one_error_line(captured.err, locked_stash.url.rsplit("/", 1)[0], "STASH_API_KEY", "--stash-api-key")
    assert "rejected the API key (HTTP 401" in line
    assert captured.err == line + "\n" and captured.out == ""  # nothing else: no log lines, no table
    assert drain(data_dir) == [] and PendingWindows(data_dir).windows() == []

    assert main([*argv[:-1], STASH_KEY]) == 0  # the right key: the same run goes through
    assert sorted(job["scene_id"] for job in drain(data_dir)) == ([] if dry_run else [1, 2])
