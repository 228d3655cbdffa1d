"""``recover``'s progress bar: drawn in place on a terminal (a pseudo-terminal here), nothing elsewhere."""

from __future__ import annotations

import argparse
import io
import os
import pty

import pytest
from blinker import Signal

from plexsync_recovery_plugin import signals
from plexsync_recovery_plugin.cli.console import listeners
from plexsync_recovery_plugin.cli.settings import Settings
from plexsync_recovery_plugin.formatting import Output, ProgressBar


@pytest.fixture
def terminal():
    """A pseudo-terminal: (the stream a program writes to, a function reading what appeared on the screen)."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    os.set_blocking(master, False)

    def screen() -> str:
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                return b"".join(chunks).decode()
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)

    yield stream, screen
    stream.close()
    os.close(master)


@pytest.fixture
def progress_signal(monkeypatch):
    """``recovery_progress``, as the plugin will declare it (this branch may not have it yet)."""
    signal = getattr(signals, "recovery_progress", None) or Signal("recovery_progress")
    monkeypatch.setattr(signals, "recovery_progress", signal, raising=False)
    return signal


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_shows_done_total_rate_and_time_left_in_place(terminal):
    stream, screen = terminal
    clock = Clock()
    bar = ProgressBar(stream, clock=clock)
    bar(None, done=0, total=1000, counts={})
    clock.now += 1.0
    bar(None, done=400, total=1000, counts={"recovered": 400})
    clock.now += 0.05
    bar(None, done=450, total=1000)  # within a tenth of a second: not redrawn
    clock.now += 1.0
    bar(None, done=1000, total=1000)  # the last entry is always drawn
    bar.finish()
    shown = screen()
    assert shown.startswith("\r[>")
    assert "\r[=========>              ] 400/1,000 entries  40%  400/s  1.5s left" in shown
    assert "450/1,000" not in shown
    assert "\r[========================] 1,000/1,000 entries 100%" in shown
    assert shown.endswith("\r\n")  # the terminal's newline after the finished bar


def test_a_second_run_starts_a_new_line(terminal):
    stream, screen = terminal
    bar = ProgressBar(stream, clock=Clock())
    bar.update(10, 10)
    bar.update(1, 5)
    bar.finish()
    lines = screen().split("\r\n")
    assert "10/10 entries" in lines[0] and "1/5 entries" in lines[1]


def _args(quiet: bool = False) -> argparse.Namespace:
    return argparse.Namespace(settings=Settings(quiet=quiet), no_subscribers=True, notify=None)


def test_recover_draws_the_progress_signal_on_a_terminal(terminal, progress_signal):
    stream, screen = terminal
    out = Output(stderr=stream)
    with listeners(_args(), out, progress=True, environ={}):
        progress_signal.send("plugin", done=3, total=12, counts={"recovered": 3})
    assert "3/12 entries  25%" in screen()
    progress_signal.send("plugin", done=4, total=12, counts={})  # disconnected once the command is done
    assert screen() == ""


@pytest.mark.parametrize("json_mode, quiet", [(True, False), (False, True)])
def test_no_bar_with_json_or_quiet(terminal, progress_signal, json_mode, quiet):
    stream, screen = terminal
    with listeners(_args(quiet), Output(stderr=stream, json_mode=json_mode), progress=True, environ={}):
        progress_signal.send("plugin", done=3, total=12, counts={})
    assert screen() == ""


def test_no_bar_when_stderr_is_not_a_terminal(progress_signal):
    captured = io.StringIO()
    with listeners(_args(), Output(stderr=captured), progress=True, environ={}):
        progress_signal.send("plugin", done=3, total=12, counts={})
    assert captured.getvalue() == ""


def test_a_window_not_counted_yet_shows_what_is_done():
    from plexsync_recovery_plugin.formatting import ProgressBar

    assert ProgressBar.render(1200, None, 1.0, 1200).endswith("] 1,200 entries")
