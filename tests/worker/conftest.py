"""Fixtures of the daemon's tests: a loopback Plex with a known token, and a Stash with scenes 1 to 9."""

from __future__ import annotations

from typing import Iterator

import pytest

from plexsync_recovery_plugin.stash.connection import StashConnection
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer

#: The Plex token of ``plex_server``: tests check it never reaches a log.
WATCH_TOKEN = "watch-daemon-token-2112"
#: A fixed "now" for the daemon's clock.
T0 = 1_780_000_000.0


@pytest.fixture
def plex_server() -> Iterator[PlexTestServer]:
    with PlexTestServer(token=WATCH_TOKEN) as server:
        yield server


@pytest.fixture
def stash() -> Iterator[StashConnection]:
    with StashTestServer(scenes=range(1, 10)) as server:
        connection = StashConnection(server.url, timeout=5.0)
        yield connection
        connection.close()
