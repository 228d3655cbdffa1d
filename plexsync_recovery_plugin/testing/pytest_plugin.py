"""pytest fixtures for testing a subscriber, registered by the ``pytest11`` entry point ``plexsync_recovery``.

Installing the package makes them available to every test session; they cost nothing until
a test asks for one (this module imports only pytest; each fixture imports what it needs), and
define no hook and no autouse fixture. Every name starts with ``plexsync_``:

- ``plexsync_signals``: a :class:`~.kit.SignalRecorder` recording every outage and recovery signal.
- ``plexsync_make_data_dir(name="plexsync-data")``: a PlexSync data directory
  (:class:`~.kit.DataDir`: ``add_entry(scene_id, failed_at=...)``, ``queued_scene_ids()``, and
  everything of ``PlexSyncData``).
- ``plexsync_make_plugin(data, plex=None, stash=None)``: a ``RecoveryPlugin`` over it
  (a healthy in-memory Plex and a Stash with every scene unless given); closed afterwards.
- ``plexsync_fire_outage(plugin, start, end)``: send ``outage_ended`` and return the ``RecoveryResult``.
- ``plexsync_plex_server`` / ``plexsync_stash_server``: the loopback ``PlexTestServer`` and
  ``StashTestServer`` (scenes 1-100), started (the Stash one needs ``graphql-core``, the ``demo`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from ..dev.plex_server import PlexTestServer
    from ..dev.stash_server import StashTestServer
    from ..plugin import RecoveryPlugin
    from .kit import DataDir, SignalRecorder

__all__ = [
    "plexsync_fire_outage",
    "plexsync_make_data_dir",
    "plexsync_make_plugin",
    "plexsync_plex_server",
    "plexsync_signals",
    "plexsync_stash_server",
]


@pytest.fixture
def plexsync_signals() -> Iterator["SignalRecorder"]:
    """Every outage and recovery signal sent during the test, in order."""
    from .kit import SignalRecorder

    with SignalRecorder() as recorder:
        yield recorder


@pytest.fixture
def plexsync_make_data_dir(tmp_path: Path) -> Callable[..., "DataDir"]:
    """Make a PlexSync data directory under the test's ``tmp_path`` (with an empty ``dlq.db`` and ``queue/``)."""
    from .kit import DataDir

    def make(name: str = "plexsync-data") -> DataDir:
        data = DataDir(tmp_path / name)
        data.create_dlq()
        (data.data_dir / "queue").mkdir(exist_ok=True)
        return data

    return make


@pytest.fixture
def plexsync_make_plugin() -> Iterator[Callable[..., "RecoveryPlugin"]]:
    """Make a ``RecoveryPlugin`` over a data directory: ``make(data, plex=None, stash=None)``; closed after the test."""
    from .kit import make_plugin

    made: list[RecoveryPlugin] = []

    def make(data: Any, *, plex: Any = None, stash: Any = None) -> "RecoveryPlugin":
        plugin = make_plugin(data, plex=plex, stash=stash)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        if plugin.connected:
            plugin.disconnect()
        plugin.close()


@pytest.fixture
def plexsync_fire_outage() -> Callable[..., Any]:
    """``fire(plugin, start, end)``: send ``outage_ended`` and return the ``RecoveryResult`` of its recovery."""
    from .kit import fire_outage

    return fire_outage


@pytest.fixture
def plexsync_plex_server() -> Iterator["PlexTestServer"]:
    """A loopback Plex (``.url``, ``.token``, ``.set_mode("down")``), started for the test."""
    from ..dev.plex_server import PlexTestServer

    with PlexTestServer() as server:
        yield server


@pytest.fixture
def plexsync_stash_server() -> Iterator["StashTestServer"]:
    """A loopback Stash with scenes 1-100 (``.url``, ``.delete_scene(n)``, ``.set_mode(...)``), started for the test."""
    from ..dev.stash_server import StashTestServer

    with StashTestServer(scenes=range(1, 101)) as server:
        yield server
