"""Subscribers found through entry points: a throwaway installed distribution on ``sys.path``."""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

import pytest
from blinker import Signal

from plexsync_recovery_plugin import signals, subscribers
from plexsync_recovery_plugin.subscribers import installed_subscribers, load_subscribers
from tests.distributions import write_subscriber_distribution


def _receivers() -> dict[Signal, set[Any]]:
    return {signal: set(signal.receivers) for signal in vars(signals).values() if isinstance(signal, Signal)}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The test distribution on ``sys.path``; its modules and every receiver it connected undone afterwards.

    Every receiver, not only this distribution's: another package of the environment that
    declares a subscriber is set up by the same calls, and must not stay connected either.
    """
    monkeypatch.syspath_prepend(str(write_subscriber_distribution(tmp_path / "site")))
    monkeypatch.setattr(subscribers, "_connected", set())
    before = _receivers()
    yield
    for signal, keys in _receivers().items():
        for key in keys - before[signal]:
            held = signal.receivers[key]
            signal.disconnect(held() if isinstance(held, weakref.ref) else held)
    sys.modules.pop("heard_sub", None)
    sys.modules.pop("raising_sub", None)


def test_a_subscriber_is_set_up_with_the_signals_module_and_the_failing_ones_are_skipped(installed, caplog):
    caplog.set_level(logging.INFO, logger="plexsync_recovery_plugin")
    tried = {found.name: found for found in load_subscribers(environ={})}
    assert tried["heard"].error is None and tried["heard"].distribution == "plexsync-test-subscribers 1.0"
    assert sys.modules["heard_sub"].SETUPS == [signals]
    assert sys.modules["heard_sub"].on_completed in [
        receiver for receiver in signals.recovery_completed.receivers_for(object())
    ]
    assert tried["broken"].error.startswith("ModuleNotFoundError: No module named 'no_such_module_for_this_subscriber'")
    assert tried["raising"].error == "RuntimeError: setup refuses"
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 2
    assert any("'broken' (broken_sub:setup) skipped" in text for text in errors)
    assert any("'raising' (raising_sub:setup) skipped: RuntimeError: setup refuses" in text for text in errors)


def test_subscribers_are_set_up_once_per_process(installed):
    load_subscribers(environ={})
    again = load_subscribers(environ={})
    assert [found.name for found in again] == ["broken", "raising"]  # the failed ones are tried again
    assert sys.modules["heard_sub"].SETUPS == [signals]


def test_the_variable_turns_loading_off(installed):
    assert load_subscribers(environ={"PLEXSYNC_RECOVERY_NO_SUBSCRIBERS": "1"}) == []
    assert "heard_sub" not in sys.modules


def test_listing_imports_but_does_not_set_up(installed):
    listed = {found.name: found.error for found in installed_subscribers(try_import=True)}
    assert listed["heard"] is None and listed["raising"] is None and "no_such_module" in listed["broken"]
    assert sys.modules["heard_sub"].SETUPS == []
