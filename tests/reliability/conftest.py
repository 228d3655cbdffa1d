"""Fixtures of the reliability tests: plain Plex and Stash stand-ins instead of mocks.

The ``plugin``, ``completed`` and ``failed`` fixtures of ``tests/conftest.py`` use them here.
"""

from __future__ import annotations

import pytest

from tests.fakes import PlainStash, SwitchablePlex


@pytest.fixture
def stash() -> PlainStash:
    return PlainStash()


@pytest.fixture
def plex() -> SwitchablePlex:
    return SwitchablePlex(up=True)
