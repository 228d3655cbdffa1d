"""Loopback stand-ins for Plex and Stash, for tests, the demo and the benchmark.

Both are real HTTP servers on 127.0.0.1 (ephemeral ports, daemon threads) that the real
clients (``plexapi``, ``stashapi``) talk to unchanged, and whose failure mode (down,
starting, slow, database locked) can be switched while a test runs. See
:class:`PlexTestServer` and :class:`StashTestServer`.
"""

from .plex_server import PlexTestServer
from .stash_server import StashTestServer

__all__ = ["PlexTestServer", "StashTestServer"]
