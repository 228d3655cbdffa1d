"""The Plex token and the Stash API key never reach stdout, stderr or a file, even when things fail.

Time budget: about 4 s (seven short subprocesses, one of them a 1 s watch).
"""

from __future__ import annotations

import json
import signal

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.sync_queue.operations import make_job
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import Daemon, assert_one_error_line
from tests.conftest import WINDOW_END, WINDOW_START

PLEX_SECRET = "SEKRIT-PLEX-123"
STASH_SECRET = "SEKRIT-STASH-456"
WRONG_STASH_SECRET = "SEKRIT-WRONG-789"
SECRETS = (PLEX_SECRET, STASH_SECRET, WRONG_STASH_SECRET)
WINDOW = ["--start", WINDOW_START, "--end", WINDOW_END]


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def _assert_files_clean(data_dir) -> None:
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in content, path


def test_a_token_stored_in_a_dlq_message_is_masked_on_output(run_cli, data_dir, plexsync_dir):
    # PlexSync may have stored a URL with the token in an error message.
    plexsync_dir.add_dead_letter(make_job(3, "metadata", {}), error_type="RuntimeError",
                                 error_message=f"GET /library?X-Plex-Token={PLEX_SECRET} failed", retry_count=1,
                                 failed_at=WINDOW_START + 5)
    for extra in ([], ["--json"]):
        listing = run_cli("dlq", "--data-dir", data_dir, *WINDOW, *extra, env={"PLEX_TOKEN": PLEX_SECRET})
        assert listing.returncode == 0 and "X-Plex-Token=***" in listing.stdout
        _assert_clean(listing.stdout, listing.stderr)


def test_secrets_never_printed_nor_stored(run_cli, cli_env, data_dir, add_entry):
    add_entry(1)
    add_entry(2)
    secret_flags = ["--plex-token", PLEX_SECRET, "--stash-api-key", STASH_SECRET]
    outputs = []
    with PlexTestServer(token=PLEX_SECRET) as plex, StashTestServer(api_key=STASH_SECRET, scenes=[1, 2]) as stash:
        urls = ["--plex-url", plex.url, "--stash-url", stash.url]
        # Stash refuses the key: a configuration error, exit 2.
        wrong_key = run_cli("recover", *WINDOW, "--data-dir", data_dir, *urls, "--plex-token", PLEX_SECRET,
                            "--stash-api-key", WRONG_STASH_SECRET, "-v")
        assert wrong_key.returncode == 2 and "rejected the API key" in wrong_key.stderr
        outputs.append(wrong_key)
        # Plex down, secrets from the environment this time, verbose dry run.
        plex.set_mode("down")
        down = run_cli("recover", *WINDOW, "--dry-run", "--data-dir", data_dir, *urls, "-v", "--json",
                       env={"PLEX_TOKEN": PLEX_SECRET, "STASH_API_KEY": STASH_SECRET})
        assert down.returncode == 1 and "did not answer" in down.stderr
        outputs.append(down)
        # A parse error that echoes the flags back, with a misspelt secret flag too.
        parse_error = run_cli("recover", f"--plex-token={PLEX_SECRET}", "--stash-api-kee", STASH_SECRET)
        assert parse_error.returncode == 2 and "unrecognized arguments" in parse_error.stderr
        outputs.append(parse_error)
        # The daemon, verbose, while Plex is down (it logs every failed probe in detail).
        daemon = Daemon(cli_env, data_dir, *urls, *secret_flags, "-v", "--fail-threshold", "1")
        daemon.wait_for("outage started")
        assert daemon.stop(signal.SIGTERM) == 0
    for proc in outputs:
        _assert_clean(proc.stdout, proc.stderr)
    _assert_clean(daemon.stderr)
    _assert_files_clean(data_dir)


def test_secrets_read_from_files_with_a_newline_work_and_stay_hidden(run_cli, data_dir, add_entry):
    """Container secrets and systemd credentials end in a newline: it is stripped, not sent, not shown."""
    add_entry(1)
    with PlexTestServer(token=PLEX_SECRET) as plex, StashTestServer(api_key=STASH_SECRET, scenes=[1]) as stash:
        proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--plex-url", plex.url, "--stash-url", stash.url,
                       "--json", env={"PLEX_TOKEN": PLEX_SECRET + "\n", "STASH_API_KEY": f" {STASH_SECRET}\r\n"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["recovered"] == 1
    _assert_clean(proc.stdout, proc.stderr)


def test_a_key_too_short_to_mask_is_refused_and_never_mangles_the_output(capsys, data_dir, add_entry):
    add_entry(1)
    code = main(["recover", *map(str, WINDOW), "--data-dir", str(data_dir), "--json", "--stash-api-key", "k"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert_one_error_line(captured.err, "Stash API key", "--stash-api-key / STASH_API_KEY", "1 characters long")
    assert "***" not in captured.err  # no 'k' anywhere was masked


def test_a_secret_inside_a_longer_word_is_left_alone(capsys, data_dir, add_entry):
    """Only whole occurrences are masked: a token that is part of a JSON key leaves the key intact."""
    add_entry(1)
    token = "already_queued"  # inside "skipped_already_queued"
    with PlexTestServer(token=token) as plex, StashTestServer(scenes=[1]) as stash:
        code = main(["recover", *map(str, WINDOW), "--data-dir", str(data_dir), "--json", "--plex-url", plex.url,
                     "--plex-token", token, "--stash-url", stash.url])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert (report["recovered"], report["skipped_already_queued"]) == (1, 0)
    assert "***" not in out
