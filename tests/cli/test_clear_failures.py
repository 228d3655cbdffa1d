"""Failures a newcomer meets, each one plain line: a missing extra, a Stash error, an unknown --error-type;
and every command's --help lists its exit statuses and only the options it uses."""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.cli import build_parser, main
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import assert_one_error_line
from tests.conftest import WINDOW_END, WINDOW_START

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]
INTERNALS = ("Traceback", "HTTPConnectionPool", "NewConnectionError", "AttributeError", "KeyError", "['r0']",
             "Max retries")


@pytest.mark.parametrize("command", [["demo"], ["bench", "--entries", "10"]])
def test_demo_and_bench_without_graphql_name_the_extra(run_cli, tmp_path, cli_env, command):
    blocked = tmp_path / "no-graphql" / "graphql"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'graphql'\", name='graphql')\n")
    proc = run_cli(*command, env={"PYTHONPATH": f"{blocked.parent}:{cli_env['PYTHONPATH']}"})
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "'demo' extra", "graphql-core", "pip install 'plexsync-recovery-plugin[demo]'")


def _stash_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Stash" in line and "recovery incomplete" not in line]


@pytest.mark.parametrize("mode, says", [
    ("locked", "answered with an error: database is locked (DATABASE_LOCKED)"),
    ("down", "cannot connect to Stash at http://127.0.0.1:"),
    ("not-stash", "does not answer like Stash"),
])
def test_a_stash_error_is_one_plain_line(capsys, data_dir, add_entry, mode, says):
    add_entry(1)
    with PlexTestServer() as plex, StashTestServer(scenes=[1]) as stash:
        if mode in ("locked", "down"):
            stash.set_mode(mode)
        url = plex.url if mode == "not-stash" else stash.url
        code = main(["recover", *WINDOW, "--data-dir", str(data_dir), "--plex-url", plex.url,
                     "--plex-token", plex.token, "--stash-url", url])
    stderr = capsys.readouterr().err
    assert code == 1
    [line] = _stash_lines(stderr)
    assert says in line, stderr
    assert not [marker for marker in INTERNALS if marker in stderr], stderr
    if mode == "down":
        assert line.endswith(": connection refused")


def test_an_unknown_error_type_is_refused_with_the_known_ones(capsys, data_dir, plexsync_dir, add_entry):
    add_entry(1, error_type="RuntimeError")  # PlexSync stores any exception's name
    assert main(["dlq", "--data-dir", str(data_dir), "--error-type", "PlexServerDwn"]) == 2
    line = assert_one_error_line(capsys.readouterr().err, "unknown --error-type 'PlexServerDwn'",
                                 "did you mean 'PlexServerDown'?", "PlexAuthError", "RuntimeError")
    assert "PlexTemporaryError" in line
    assert main(["dlq", "--json", "--data-dir", str(data_dir), "--error-type", "RuntimeError"]) == 0
    assert json.loads(capsys.readouterr().out)["by_day"][0]["count"] == 1


def _subparsers(parser):
    [action] = [action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def test_every_help_lists_its_exit_statuses_and_only_its_options():
    parser = build_parser()
    assert "exit status:" in parser.format_help()
    commands = _subparsers(parser)
    commands["install"] = _subparsers(commands["stash-plugin"])["install"]
    servers = {"--plex-url", "--plex-token", "--stash-url", "--stash-api-key", "--include-optional"}
    for name, command in commands.items():
        text = command.format_help()
        assert "exit status:" in text, name
        shown = servers & set(text.split())
        if name in ("recover", "watch"):
            assert shown == servers, name
        else:
            assert not shown, (name, shown)
    assert "--data-dir" not in commands["bench"].format_help()
    assert "--notify" in commands["watch"].format_help() and "--notify" not in commands["dlq"].format_help()
