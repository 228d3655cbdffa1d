"""Fixtures of the reliability tests: plain Plex/Stash stand-ins, signal recorders, a connected plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, recovery_completed, recovery_failed
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from tests.reliability.helpers import PlainStash, Recorder, SwitchablePlex


@pytest.fixture
def stash() -> PlainStash:
    return PlainStash()


@pytest.fixture
def plex() -> SwitchablePlex:
    return SwitchablePlex(up=True)


@pytest.fixture
def plugin(
    dlq: DeadLetterQueue, queue, stash: PlainStash, plex: SwitchablePlex, data_dir: Path
) -> Iterator[RecoveryPlugin]:
    with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as connected:
        yield connected


@pytest.fixture
def completed() -> Iterator[Recorder]:
    recorder = Recorder()
    with recovery_completed.connected_to(recorder):
        yield recorder


@pytest.fixture
def failed() -> Iterator[Recorder]:
    recorder = Recorder()
    with recovery_failed.connected_to(recorder):
        yield recorder
