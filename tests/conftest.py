"""Fixtures shared by the whole suite: a PlexSync data dir with a real DLQ and a real queue."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.plex import exceptions as plex_exceptions
from plexsync_recovery_plugin.subscribers import DISABLE_VARIABLE
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.operations import make_job, open_queue
from tests.fakes import Recorder


def pytest_configure(config: pytest.Config) -> None:
    """Use the package's test kit (``plexsync_*`` fixtures) even where the package is not installed.

    Installed, its ``pytest11`` entry point registers the kit already; registering it twice would fail.
    """
    from plexsync_recovery_plugin.testing import pytest_plugin

    if not config.pluginmanager.is_registered(pytest_plugin):
        config.pluginmanager.register(pytest_plugin, "plexsync_recovery")


@pytest.fixture(autouse=True, scope="session")
def _outside_subscribers_stay_outside() -> Any:
    """Subscribers another package installed in this environment are not this suite's to run.

    Every door a test runs, in this process or in a child (which inherits the variable), loads
    none; a test about subscribers installs its own and removes the variable for itself.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv(DISABLE_VARIABLE, "1")
    yield
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def _child_pythons_reuse_their_bytecode(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The suite's child Pythons compile each module once per session, not once per process.

    Where writing bytecode is turned off (``PYTHONDONTWRITEBYTECODE``, as in many containers),
    each of the few hundred processes the suite starts (the CLI, the daemon, the Stash
    plugin's launcher, the crash workers) would compile every module it imports from source:
    about 0.08 s of CPU each. The children write and reuse their bytecode in a folder of this
    session (``PYTHONPYCACHEPREFIX``) instead: the source tree stays untouched, and what they
    run is the same code.
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        yield
        return
    patch = pytest.MonkeyPatch()
    patch.delenv("PYTHONDONTWRITEBYTECODE")
    patch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.mktemp("bytecode")))
    yield
    patch.undo()


#: A fixed outage window used across tests: 2026-02-15 19:00:00 .. 19:30:00 UTC.
WINDOW_START = 1771182000.0
WINDOW_END = WINDOW_START + 1800.0


def plex_error(error_type: str, message: str = "boom") -> Exception:
    """An instance of the named Plex error (or of a throwaway class with that name)."""
    cls = getattr(plex_exceptions, error_type, None) or type(error_type, (Exception,), {})
    return cls(message)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "plexsync-data"
    path.mkdir()
    return path


@pytest.fixture
def plexsync_dir(data_dir: Path) -> PlexSyncData:
    """Writes PlexSync's files into ``data_dir`` as PlexSync does."""
    return PlexSyncData(data_dir)


@pytest.fixture
def dlq(plexsync_dir: PlexSyncData) -> DeadLetterQueue:
    """The read-only DLQ over a ``dlq.db`` PlexSync has created (empty)."""
    plexsync_dir.create_dlq()
    return DeadLetterQueue(plexsync_dir.data_dir)


@pytest.fixture
def queue(data_dir: Path):
    q = open_queue(data_dir)
    yield q
    q.close()


@pytest.fixture
def stash(mocker):
    """A mocked Stash gate that has every scene except those in ``stash.deleted``."""
    fake = mocker.Mock(name="stash")
    fake.deleted = set()
    fake.find_scene.side_effect = lambda scene_id: None if scene_id in fake.deleted else {"id": str(scene_id)}
    return fake


@pytest.fixture
def plex(mocker):
    """A mocked, healthy Plex gate: ``query('/identity')`` answers."""
    client = mocker.Mock(name="plex")
    client.query.return_value = "<MediaContainer/>"
    return client


@pytest.fixture
def plugin(dlq, queue, stash, plex, data_dir):
    """A connected ``RecoveryPlugin`` over the real DLQ and queue and this directory's Stash and Plex."""
    from plexsync_recovery_plugin import RecoveryPlugin

    with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as connected:
        yield connected


@pytest.fixture
def completed():
    """Every ``recovery_completed`` payload sent during the test."""
    from plexsync_recovery_plugin.signals import recovery_completed

    recorder = Recorder()
    with recovery_completed.connected_to(recorder):
        yield recorder


@pytest.fixture
def failed():
    """Every ``recovery_failed`` payload sent during the test."""
    from plexsync_recovery_plugin.signals import recovery_failed

    recorder = Recorder()
    with recovery_failed.connected_to(recorder):
        yield recorder


AddEntry = Callable[..., int]


@pytest.fixture
def add_entry(plexsync_dir: PlexSyncData, dlq: DeadLetterQueue) -> AddEntry:
    """Dead-letter a job for ``scene_id`` that failed at ``failed_at`` with ``error_type``, as PlexSync does."""

    def add(
        scene_id: int,
        *,
        failed_at: float = WINDOW_START + 60,
        error_type: str = "PlexServerDown",
        update_type: str = "metadata",
        data: Any = None,
    ) -> int:
        job = make_job(scene_id, update_type, data if data is not None else {"title": f"Scene {scene_id}"})
        return plexsync_dir.add_dead_letter(job, error_type=error_type, retry_count=3, failed_at=failed_at)

    return add


def drain(data_dir: Path) -> list[dict[str, Any]]:
    """Read every pending job back with a fresh SQLiteAckQueue, as PlexSync's worker would."""
    from persistqueue import SQLiteAckQueue
    from persistqueue.exceptions import Empty

    fresh = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False)
    jobs = []
    try:
        while True:
            try:
                jobs.append(fresh.get(block=False))
            except Empty:
                return jobs
    finally:
        fresh.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
