"""Test kit: loopback stand-ins for Plex and Stash, and PlexSync's files written as PlexSync writes them.

Both servers are real HTTP servers on 127.0.0.1 (ephemeral ports, daemon threads) that the
real clients (``plexapi``, ``stashapi``) talk to unchanged, and whose failure mode (down,
starting, slow, database locked) can be switched while a test runs. See
:class:`PlexTestServer` and :class:`StashTestServer` (in ``dev``), both built on
``dev.loopback_http`` (a loopback port that can stop and resume listening, and the request
handler both share). ``dev.plexsync_data`` writes a PlexSync data directory (``dlq.db``, the
queue, ``outage_history.json``).

The servers load on first use, so ``plexsync_data`` imports without them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PlexTestServer", "StashTestServer"]


def __getattr__(name: str) -> Any:
    if name == "PlexTestServer":
        from ..dev.plex_server import PlexTestServer

        return PlexTestServer
    if name == "StashTestServer":
        from ..dev.stash_server import StashTestServer

        return StashTestServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
