"""The one error model through the library: a refused Plex token stops the run as its error, never "plex down"."""

from __future__ import annotations

import pytest

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.errors import (
    CLI,
    PLEX_TOKEN,
    STASH,
    STASH_API_KEY,
    STASH_SESSION,
    ConfigurationError,
    answer_excerpt,
    explain,
    stash_credential_rejected,
)
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.redaction import REDACTOR
from plexsync_recovery_plugin.testing import PlexTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain

WRONG_TOKEN = "wrong-plex-token-5c6d"


@pytest.fixture
def refusing_plex():
    with PlexTestServer(token="the-right-plex-token") as server:
        connection = PlexConnection(server.url, WRONG_TOKEN, timeout=2.0)
        yield server, connection
        connection.close()


def test_a_refused_token_is_the_runs_error_and_the_window_waits_for_the_fix(
    dlq, queue, stash, data_dir, add_entry, failed, completed, refusing_plex
):
    server, plex = refusing_plex
    add_entry(1, failed_at=WINDOW_START + 5)
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin:
        [run] = plugin.recover(WINDOW_START, WINDOW_END)
        with pytest.raises(ConfigurationError) as previewed:
            plugin.preview(WINDOW_START, WINDOW_END)
        pending = plugin.pending_windows()
    assert run.result is None and isinstance(run.error, ConfigurationError)
    assert run.error.credential == previewed.value.credential == PLEX_TOKEN
    assert str(run.error) == f"Plex at {server.url} answered 401/403: it rejected the token"
    assert [call["error"] for call in failed.calls] == [run.error] and completed.calls == []
    assert pending == [(WINDOW_START, WINDOW_END)] and drain(data_dir) == []


def test_each_door_gets_its_own_advice_for_the_same_error():
    error = ConfigurationError("Plex at http://plex:32400 answered 401/403: no token was given", PLEX_TOKEN)
    assert explain(error, CLI).endswith("set a valid Plex token with PLEX_TOKEN or --plex-token")
    assert "Stash2Plex's plugin settings" in explain(error, STASH)


@pytest.mark.parametrize(
    ("credential", "said"),
    [(STASH_API_KEY, "rejected the API key"), (STASH_SESSION, "rejected the Stash session"), (None, "no API key was given")],
)
def test_stash_refusals_name_what_was_sent(credential, said):
    error = stash_credential_rejected("http://admin:pw@stash:9999", 401, "Unauthorized", credential)
    assert said in str(error) and "admin:***@stash" in str(error)
    assert ("API key" in str(error)) == (credential != STASH_SESSION)


def test_a_server_page_is_quoted_by_its_first_meaningful_line_masked():
    REDACTOR.add("abcdefghijklmnopqrst")
    page = "\n<html><head><title>Oops</title></head>\n<body>token abcdefghijklmnopqrst refused</body></html>"
    assert answer_excerpt(page) == "Oops"
    assert answer_excerpt("<p>token abcdefghijklmnopqrst refused</p>") == "token *** refused"
