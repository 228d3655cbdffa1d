"""The watch daemon's share of the one error model: a Plex error page that echoes the token is
logged masked, and a Stash that refuses the API key is one error line while probing and retrying
go on. Loopback Plex and Stash, the real clients, ticks driven by hand with a controlled clock."""

from __future__ import annotations

import logging

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.errors import ConfigurationError
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.signals import recovery_failed
from plexsync_recovery_plugin.stash.connection import StashConnection
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.fakes import Clock, Recorder
from tests.worker.conftest import T0

TOKEN = "abcdefghijklmnopqrst"  # 20 characters, as a Plex token


def _pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[index : index + size] for index in range(len(secret) - size + 1)]


def test_a_plex_error_page_echoing_the_token_is_logged_without_a_piece_of_it(dlq, queue, data_dir, stash, caplog):
    caplog.set_level(logging.DEBUG)
    with PlexTestServer(token=TOKEN, initial_mode="starting") as plex_server:
        # plexapi's message: "(503) service_unavailable; <url>/ <page>"; a probe's detail used to keep its
        # first 200 characters. The page puts the token where that cut falls, 10 characters before it.
        head = f"(503) service_unavailable; {plex_server.url}/ <html><body><p>"
        filler = "x" * (190 - len(head) - len("X-Plex-Token="))
        plex_server.starting_body = f"<html><body><p>{filler}X-Plex-Token={TOKEN}</p></body></html>".encode()
        plex = PlexConnection(plex_server.url, TOKEN, timeout=2.0)
        clock = Clock(T0)
        try:
            with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin:
                daemon = WatchDaemon(plex, plugin, WatchSettings(fail_threshold=1, recover_threshold=1), clock=clock)
                for _ in range(2):
                    daemon.tick()
                    clock.now += 5.0
        finally:
            plex.close()
    logged = [record.getMessage() for record in caplog.records if record.name.startswith("plexsync_recovery_plugin")]
    assert any("Plex is not answering" in line for line in logged)
    assert not [line for line in logged if any(piece in line for piece in _pieces(TOKEN))]
    assert not any("<html>" in line for line in logged)  # a page's first meaningful line, never its markup


def test_a_refused_stash_key_is_one_error_line_while_probing_and_retries_go_on(
    plex_server, dlq, queue, data_dir, add_entry, caplog
):
    add_entry(1, failed_at=WINDOW_START + 5)
    PendingWindows(data_dir).add(WINDOW_START, WINDOW_END)  # left by an earlier deferred run
    failures = Recorder()
    with StashTestServer(api_key="the-right-key-0a1b", scenes=[1]) as stash_server:
        stash = StashConnection(stash_server.url, "a-wrong-key-9f8e", timeout=5.0)
        plex = PlexConnection(plex_server.url, plex_server.token, timeout=2.0)
        clock = Clock(T0)
        settings = WatchSettings(retry_interval=10.0)
        try:
            with RecoveryPlugin(dlq, queue, stash, plex, data_dir) as plugin, recovery_failed.connected_to(failures):
                daemon = WatchDaemon(plex, plugin, settings, clock=clock)
                caplog.set_level(logging.INFO)
                for _ in range(6):  # three retries, 10 s apart
                    daemon.tick()
                    clock.now += 5.0
        finally:
            plex.close()
            stash.close()
    assert len(failures.calls) == 3 and all(isinstance(call["error"], ConfigurationError) for call in failures.calls)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "rejected the API key" in errors[0] and "STASH_API_KEY" in errors[0]
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)] and drain(data_dir) == []
