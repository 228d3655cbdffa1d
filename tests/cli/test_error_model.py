"""The command line's share of the one error model: what it says of a missing Stash key, secrets cut
from a long text, and passwords written in URLs."""

from __future__ import annotations

import json

from plexsync_recovery_plugin.sync_queue.operations import make_job
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import assert_one_error_line
from tests.conftest import WINDOW_END, WINDOW_START

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]
TOKEN = "abcdefghijklmnopqrst"  # 20 characters, as a Plex token
URL_PASSWORD = "s3cr3t"  # too short for the secret list: a URL's password is masked by its place


def _pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[index : index + size] for index in range(len(secret) - size + 1)]


def test_no_stash_key_at_all_says_none_was_given(run_cli, data_dir, add_entry, plex_server):
    add_entry(1)
    with StashTestServer(api_key="stash-right-key-0a1b2c", scenes=[1]) as stash:
        flags = ["--plex-url", plex_server.url, "--plex-token", plex_server.token, "--stash-url", stash.url]
        done = run_cli("recover", *WINDOW, "--data-dir", data_dir, *flags)
    assert done.returncode == 2
    line = assert_one_error_line(done.stderr, "no API key was given", "STASH_API_KEY", "--stash-api-key")
    assert "rejected" not in line


def test_dlq_never_prints_a_piece_of_a_token_its_cut_left(run_cli, data_dir, plexsync_dir):
    # The listing cuts messages to 60 characters: the token is placed so that the cut keeps 19 of its 20.
    message = "Plex said: " + "x" * (57 - 19 - len("Plex said: ")) + TOKEN + " and more"
    plexsync_dir.add_dead_letter(make_job(3, "metadata", {}), error_type="PlexServerDown", error_message=message,
                                 retry_count=1, failed_at=WINDOW_START + 5)
    listing = run_cli("dlq", "--data-dir", data_dir, *WINDOW, env={"PLEX_TOKEN": TOKEN})
    assert listing.returncode == 0, listing.stderr
    assert "Plex said: xxx" in listing.stdout  # the message is there, cut
    assert not any(piece in listing.stdout + listing.stderr for piece in _pieces(TOKEN))


def test_a_password_in_a_url_is_masked_in_errors_and_json(run_cli, data_dir, add_entry, stash_server):
    add_entry(1)
    with PlexTestServer(token="plex-cli-token", initial_mode="down") as plex:  # the port is held, nobody answers
        url = plex.url.replace("http://", f"http://admin:{URL_PASSWORD}@")
        flags = ["--plex-url", url, "--plex-token", plex.token, "--stash-url", stash_server.url]
        text = run_cli("recover", *WINDOW, "--data-dir", data_dir, *flags)
        as_json = run_cli("recover", *WINDOW, "--data-dir", data_dir, *flags, "--json")
    assert text.returncode == as_json.returncode == 1
    line = assert_one_error_line(text.stderr, "admin:***@127.0.0.1", "did not answer its health check")
    assert URL_PASSWORD not in line
    [error] = [json.loads(row)["error"] for row in as_json.stderr.splitlines() if row.startswith("{")]
    assert "admin:***@127.0.0.1" in error
    for done in (text, as_json):
        assert URL_PASSWORD not in done.stdout + done.stderr
