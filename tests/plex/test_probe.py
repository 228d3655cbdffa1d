"""``probe_plex`` and the health gate against the loopback Plex, through the real plexapi.

Two client shapes are probed: our ``PlexConnection`` and a wrapper shaped like PlexSync's
own Plex client (written here from its documented behaviour: the ``PlexServer`` is built
lazily behind a ``.server`` property with the wrapper's own session and timeout; connection
errors are retried a few times and then raised as they are; any other failure is raised as
the wrapper's own exception type, ``from`` plexapi's; there is no ``.query`` of its own).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from plexsync_recovery_plugin import RecoveryPlugin, StashConnection
from plexsync_recovery_plugin.plex.health import (
    PLEX_DOWN,
    PLEX_TOKEN_REJECTED,
    PLEX_UP,
    PlexConnection,
    check_plex_health,
    probe_plex,
)
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain

TOKEN = "probe-test-token-5150"
WRONG = "probe-wrong-token-0000"


class WrapperPermanentError(Exception):
    """The wrapper's own error type (PlexSync has its own exception hierarchy)."""


class PlexSyncStyleClient:
    """A Plex client wrapper with PlexSync's shape: ``.server`` built lazily, no ``.query``."""

    def __init__(self, url: str, token: str, read_timeout: float = 5.0) -> None:
        self._url, self._token, self._read_timeout = url, token, read_timeout
        self._server: Any = None
        self._session: requests.Session | None = None

    @property
    def server(self) -> Any:
        if self._server is None:
            self._server = self._connect()
        return self._server

    def _connect(self) -> Any:
        from plexapi.server import PlexServer

        for attempt in range(3):
            try:
                if self._session is None:
                    self._session = requests.Session()
                return PlexServer(self._url, self._token, session=self._session, timeout=self._read_timeout)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == 2:
                    raise
            except Exception as error:
                raise WrapperPermanentError(f"Authentication failed: {error}") from error
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


@pytest.fixture
def plex_server():
    with PlexTestServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def wrapper(plex_server):
    client = PlexSyncStyleClient(plex_server.url, TOKEN)
    yield client
    client.close()


def test_plexsync_wrapper_passes_the_health_gate(wrapper):
    assert not hasattr(wrapper, "query")
    healthy, latency_ms = check_plex_health(wrapper, timeout=2.0)
    assert healthy is True and latency_ms > 0.0
    assert probe_plex(wrapper, timeout=2.0).state == PLEX_UP


def test_plexsync_wrapper_down_and_starting_are_down(plex_server, wrapper):
    plex_server.set_mode("starting")
    assert probe_plex(wrapper, timeout=2.0).state == PLEX_DOWN
    plex_server.set_mode("down")
    probe = probe_plex(PlexSyncStyleClient(plex_server.url, TOKEN), timeout=2.0)
    assert (probe.state, probe.detail.split(":")[0]) == (PLEX_DOWN, "PlexServerDown")


def test_plexsync_wrapper_with_a_wrong_token_is_token_rejected(plex_server):
    client = PlexSyncStyleClient(plex_server.url, WRONG)
    try:
        probe = probe_plex(client, timeout=2.0)
        assert probe.state == PLEX_TOKEN_REJECTED
        assert probe.detail.startswith("PlexAuthError")
        assert WRONG not in probe.detail
        assert check_plex_health(client) == (False, 0.0)
    finally:
        client.close()


def test_recovery_inside_a_plexsync_worker_uses_its_wrapper(wrapper, dlq, queue, data_dir, add_entry):
    """The whole gate: a RecoveryPlugin given PlexSync's wrapper re-queues the window's entries."""
    add_entry(1, failed_at=WINDOW_START + 10)
    add_entry(2, failed_at=WINDOW_START + 20)
    with StashTestServer(scenes=[1, 2]) as stash_server:
        stash = StashConnection(stash_server.url, timeout=5.0)
        try:
            result = RecoveryPlugin(dlq, queue, stash, wrapper, data_dir).recover_window(WINDOW_START, WINDOW_END)
        finally:
            stash.close()
    assert result is not None
    assert (result.recovered, result.skipped_plex_down, result.deferred) == (2, 0, False)
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]


def test_plex_connection_with_a_wrong_token_is_token_rejected_not_down(plex_server):
    connection = PlexConnection(plex_server.url, WRONG, timeout=2.0)
    try:
        probe = probe_plex(connection, timeout=2.0)
    finally:
        connection.close()
    assert (probe.state, probe.healthy, probe.latency_ms) == (PLEX_TOKEN_REJECTED, False, 0.0)


def test_plex_connection_without_a_token_is_token_rejected(plex_server):
    connection = PlexConnection(plex_server.url, None, timeout=2.0)
    try:
        assert probe_plex(connection, timeout=2.0).state == PLEX_TOKEN_REJECTED
    finally:
        connection.close()


def test_a_token_revoked_after_connecting_is_seen_on_identity(plex_server):
    """The PlexServer is already built, so only /identity is asked: it must see the 401 too."""
    connection = PlexConnection(plex_server.url, TOKEN, timeout=2.0)
    try:
        assert probe_plex(connection, timeout=2.0).state == PLEX_UP
        plex_server.set_mode("revoked")
        assert probe_plex(connection, timeout=2.0).state == PLEX_TOKEN_REJECTED
        plex_server.set_mode("up")
        assert probe_plex(connection, timeout=2.0).state == PLEX_UP
    finally:
        connection.close()


def test_no_client_is_down_and_never_raises():
    probe = probe_plex(None)
    assert probe.state == PLEX_DOWN and "no Plex client" in probe.detail
    assert probe_plex(object()).state == PLEX_DOWN
