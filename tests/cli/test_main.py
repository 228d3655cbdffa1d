"""``main``: settings from flags and environment, error lines and exit codes, logging, tables."""

from __future__ import annotations

import io
import logging
import sqlite3
from datetime import datetime, timezone

import pytest

from plexsync_recovery_plugin.cli import build_parser, commands, main
from plexsync_recovery_plugin.cli.console import configure_logging
from plexsync_recovery_plugin.cli.settings import DEFAULT_PLEX_URL, UsageError, parse_time, resolve
from plexsync_recovery_plugin.formatting import format_duration, format_table
from plexsync_recovery_plugin.redaction import SecretRedactor
from tests.cli.conftest import assert_one_error_line


def test_flags_override_the_environment(tmp_path):
    env = {
        "STASH_PLUGIN_DATA": "/from/env",
        "PLEX_URL": "http://env-plex:32400",
        "PLEX_TOKEN": "env-token",
        "STASH_URL": "http://env-stash:9999",
        "STASH_API_KEY": "env-api-key",
    }
    # Common flags are accepted before and after the subcommand.
    args = build_parser().parse_args(["--plex-token", "flag-token", "outages", "--data-dir", str(tmp_path)])
    settings = resolve(args, env)
    assert settings.data_dir == tmp_path
    assert settings.plex_token == "flag-token"
    assert (settings.plex_url, settings.stash_url, settings.stash_api_key) == (
        "http://env-plex:32400", "http://env-stash:9999", "env-api-key")
    defaults = resolve(build_parser().parse_args(["outages"]), {})
    assert (defaults.data_dir, defaults.plex_url, defaults.plex_token) == (None, DEFAULT_PLEX_URL, None)
    assert "env-token" not in repr(resolve(args, env)) and "flag-token" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-15T19:17:49Z", datetime(2026, 2, 15, 19, 17, 49, tzinfo=timezone.utc).timestamp()),
        ("2026-02-15 19:17:49", datetime(2026, 2, 15, 19, 17, 49, tzinfo=timezone.utc).timestamp()),
        ("2026-02-15T21:17:49+02:00", datetime(2026, 2, 15, 19, 17, 49, tzinfo=timezone.utc).timestamp()),
        ("1771183069", 1771183069.0),
        ("1771183069.25", 1771183069.25),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "nan", "-5", "1e9", "2026-02-30T00:00:00", "1969-12-31T23:59:59Z"])
def test_parse_time_rejects_with_the_value_named(text):
    with pytest.raises(UsageError, match=repr(text).replace("(", r"\(").replace("+", r"\+")):
        parse_time(text, "--start")


def test_missing_data_dir_is_one_line(run_cli, tmp_path):
    proc = run_cli("outages")
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "--data-dir", "STASH_PLUGIN_DATA")
    gone = tmp_path / "nowhere"
    proc = run_cli("dlq", env={"STASH_PLUGIN_DATA": str(gone)})
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, repr(str(gone)), "does not exist")


def test_data_dir_that_is_a_file(capsys, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["recover", "--data-dir", str(afile), "--last-outage"]) == 2
    assert_one_error_line(capsys.readouterr().err, repr(str(afile)), "not a directory")


def test_unreadable_dlq_is_one_line(capsys, data_dir):
    (data_dir / "dlq.db").mkdir()  # root can read any file, but nobody can open a directory as SQLite
    assert main(["dlq", "--data-dir", str(data_dir)]) == 1
    assert_one_error_line(capsys.readouterr().err, str(data_dir / "dlq.db"), "cannot open the DLQ")


def test_read_only_database_error_is_one_line(capsys, data_dir, monkeypatch):
    def read_only(args):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(commands, "run_outages", read_only)
    assert main(["outages", "--data-dir", str(data_dir)]) == 1
    assert_one_error_line(capsys.readouterr().err, "SQLite error", str(data_dir), "readonly")


def test_unexpected_error_is_one_line_and_verbose_shows_the_traceback(capsys, data_dir, monkeypatch):
    def crash(args):
        raise RuntimeError("boom with SEKRIT-1 inside")

    monkeypatch.setattr(commands, "run_outages", crash)
    assert main(["outages", "--data-dir", str(data_dir), "--plex-token", "SEKRIT-1"]) == 1
    err = capsys.readouterr().err
    line = assert_one_error_line(err, "unexpected RuntimeError", "boom with *** inside", "-v")
    assert err == line + "\n"
    assert main(["outages", "--data-dir", str(data_dir), "--plex-token", "SEKRIT-1", "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "in crash" in err and "SEKRIT-1" not in err


def test_help_says_naive_times_are_utc(capsys):
    assert main(["recover", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--last-outage" in out and "a time without a zone is UTC" in out and "(no zone = UTC)" in out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["recovr"]) == 2
    assert_one_error_line(capsys.readouterr().err, "'recovr'")


def test_logging_filter_masks_message_args_and_traceback():
    stream = io.StringIO()
    handle = configure_logging(logging.DEBUG, SecretRedactor(["tok/en 1"]), stream=stream)
    log = logging.getLogger("plexsync_recovery_plugin.tests_cli")
    try:
        log.warning("token is %s and %r", "tok/en 1", {"url": "http://x/?t=tok%2Fen%201"})
        try:
            raise ValueError("failed with tok/en 1")
        except ValueError:
            log.exception("crash")
        logging.getLogger("plexapi").info("plexapi info is not shown: tok/en 1")
        logging.getLogger("plexapi").warning("plexapi warning shown: tok/en 1")
    finally:
        handle.close()
    text = stream.getvalue()
    assert "tok/en 1" not in text and "tok%2Fen%201" not in text
    assert "token is *** and {'url': 'http://x/?t=***'}" in text
    assert "ValueError: failed with ***" in text
    assert "plexapi warning shown: ***" in text and "plexapi info" not in text
    assert log.getEffectiveLevel() == logging.getLogger("plexsync_recovery_plugin").getEffectiveLevel()
    assert not any(getattr(h, "stream", None) is stream for h in logging.getLogger("plexsync_recovery_plugin").handlers)


def test_table_alignment():
    lines = format_table(["name", "count", "note"], [("a", 1, None), ("longer", 100, "multi\nline")])
    assert lines == [
        "name    count  note",
        "------  -----  ----------",
        "a           1  -",
        "longer    100  multi line",
    ]
    with pytest.raises(ValueError):
        format_table(["one"], [("a", "b")])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "n/a"), (0.44, "0.4s"), (42, "42s"), (185, "3m 05s"), (7300, "2h 01m 40s"), (3 * 86400 + 14700, "3d 04h 05m")],
)
def test_durations(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("flag", "value"), [("--plex-url", "ftp://plex:32400"), ("--stash-url", "localhost:9999")]
)
def test_bad_server_url_is_a_usage_error(capsys, data_dir, flag, value):
    assert main(["recover", "--data-dir", str(data_dir), "--start", "1", "--end", "2", flag, value]) == 2
    assert_one_error_line(capsys.readouterr().err, repr(value))
