"""The plugin's small parts: where PlexSync's data is, Stash's input, the log protocol, progress."""

from __future__ import annotations

import io
import json
import logging

import pytest

from plexsync_recovery_plugin.cli.settings import resolve
from plexsync_recovery_plugin.engine import EntryOutcome, Outcome
from plexsync_recovery_plugin.plexsync_paths import cli_default_data_dir, plexsync_data_dir
from plexsync_recovery_plugin.stash_plugin.protocol import PluginInputError, StashLogHandler, parse_plugin_input
from plexsync_recovery_plugin.stash_plugin.tasks import chunk_progress


def test_plexsync_data_dir_follows_plexsyncs_own_rule(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "Stash2Plex").mkdir(parents=True)
    assert plexsync_data_dir(plugins, environ={}) is None  # no manifest: PlexSync is not there
    (plugins / "Stash2Plex" / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    assert plexsync_data_dir(plugins, environ={}) == plugins / "Stash2Plex" / "data"
    elsewhere = tmp_path / "elsewhere"
    assert plexsync_data_dir(plugins, environ={"STASH_PLUGIN_DATA": str(elsewhere)}) == elsewhere
    assert plexsync_data_dir(None, environ={}) is None


def test_plexsync_installed_under_another_folder_name_is_found(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "aaa-other").mkdir(parents=True)
    (plugins / "community" / "sub").mkdir(parents=True)
    (plugins / "stash2plex-main").mkdir()
    (plugins / "stash2plex-main" / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    assert plexsync_data_dir(plugins, environ={}) == plugins / "stash2plex-main" / "data"


def test_the_cli_defaults_to_plexsyncs_folder_when_it_exists(tmp_path, monkeypatch):
    import argparse

    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli_default_data_dir() is None
    assert resolve(argparse.Namespace(), environ={}).data_dir is None
    data = tmp_path / ".stash" / "plugins" / "Stash2Plex" / "data"
    data.mkdir(parents=True)
    (data.parent / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    assert resolve(argparse.Namespace(), environ={}).data_dir == data
    assert resolve(argparse.Namespace(), environ={"STASH_PLUGIN_DATA": "/x"}).data_dir.as_posix() == "/x"
    assert resolve(argparse.Namespace(data_dir="/y"), environ={}).data_dir.as_posix() == "/y"


def test_plugin_input_is_parsed_as_stash_writes_it():
    raw = {
        "server_connection": {"Scheme": "https", "Host": "0.0.0.0", "Port": 9999,
                              "SessionCookie": {"Name": "session", "Value": "abc"}, "Dir": "/root/.stash",
                              "PluginDir": "/root/.stash/plugins/PlexSyncRecovery"},
        "args": {"hookContext": {"id": 1, "type": "Scene.Update.Post", "input": {}}},
    }
    parsed = parse_plugin_input(json.dumps(raw))
    assert parsed.is_hook and parsed.hook_type == "Scene.Update.Post" and parsed.mode is None
    assert parsed.server.url == "https://127.0.0.1:9999"
    assert parsed.server.session_cookie == "abc" and "abc" not in repr(parsed)
    assert [p.as_posix() for p in parsed.server.plugins_dirs()] == ["/root/.stash/plugins"]
    task = parse_plugin_input(json.dumps({"server_connection": {"Port": 1}, "args": {"mode": "outage_report"}}))
    assert (task.is_hook, task.mode, task.server.session_cookie) == (False, "outage_report", None)


@pytest.mark.parametrize(
    "text, named",
    [("", "not the JSON object"), ("[1]", "not the JSON object"), ('{"args": {}}', "server_connection"),
     ('{"server_connection": {"Port": "x"}}', "'x'")],
)
def test_bad_plugin_input_names_the_problem(text, named):
    with pytest.raises(PluginInputError, match=named):
        parse_plugin_input(text)


def test_log_handler_writes_stashs_protocol_and_masks_secrets():
    stream = io.StringIO()
    handler = StashLogHandler(stream, ["s3cret"])
    logger = logging.getLogger("plexsync_recovery_plugin.test_stash_log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s and url-encoded %s", "s3cret", "s3cret")
        handler.add_secrets("a b")
        logger.error("two\nlines with a%20b")
        handler.progress(1.7)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "\x01w\x02token *** and url-encoded ***",
        "\x01e\x02two",
        "\x01e\x02lines with ***",
        "\x01p\x021.000",
    ]


def test_progress_is_shown_once_per_chunk_and_at_the_end():
    shown: list[float] = []
    heard = []
    observe = chunk_progress(2500, shown.append, then=heard.append)
    for index in range(2500):
        observe(EntryOutcome(index, index, "PlexServerDown", "2026-02-15 19:00:00", Outcome.RECOVERED, ""))
    assert shown == [0.4, 0.8, 1.0]
    assert len(heard) == 2500
