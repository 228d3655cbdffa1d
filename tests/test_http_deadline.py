"""Every Plex and Stash request has an overall deadline: a server trickling its answer cannot hold a run."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.http_deadline import DeadlineExceeded, apply_deadline
from plexsync_recovery_plugin.plex.exceptions import PlexTemporaryError
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.stash.connection import StashConnection
from plexsync_recovery_plugin.state import recovery_lock
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain

DEADLINE = 1.0
TRICKLE = 0.5  # seconds per byte: each read gets a byte well within any per-read timeout


@pytest.fixture
def trickling_stash():
    with StashTestServer(scenes=[1, 2]) as server:
        server.trickle_interval = TRICKLE
        yield server


def test_a_trickling_stash_defers_the_window_within_the_deadline_and_lets_the_lock_go(
    dlq, queue, data_dir, add_entry, trickling_stash
):
    add_entry(1, failed_at=WINDOW_START + 5)
    add_entry(2, failed_at=WINDOW_START + 6)
    runs: list = []
    with PlexTestServer(token="plex-deadline-token") as plex_server:
        plex = PlexConnection(plex_server.url, plex_server.token, timeout=5.0, deadline=DEADLINE)
        stash = StashConnection(trickling_stash.url, timeout=10.0, deadline=DEADLINE)
        stash.client()  # connected while Stash answers normally
        trickling_stash.set_mode("trickle")  # then its answers about scenes come one byte every 0.5 s
        plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir)
        worker = threading.Thread(target=lambda: runs.extend(plugin.recover(WINDOW_START, WINDOW_END)))
        started = time.monotonic()
        worker.start()
        worker.join(timeout=10 * DEADLINE)  # a bound, not a wait for a state: the run ends on its own
        finished_in = time.monotonic() - started
        trickling_stash.set_mode("up")  # releases a request still trickling (today's code) before the join
        worker.join()
        plex.close()
        stash.close()
    assert finished_in < 10 * DEADLINE
    [run] = runs
    assert run.result is not None and run.result.deferred and run.result.skipped_stash_error == 2
    assert plugin.pending_windows() == [(WINDOW_START, WINDOW_END)] and drain(data_dir) == []
    with recovery_lock(data_dir, wait=0):  # the lock was let go
        pass


def test_the_deadline_covers_the_whole_answer_not_each_read(trickling_stash):
    trickling_stash.set_mode("trickle")
    session = apply_deadline(requests.Session(), DEADLINE)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded, match=f"within {DEADLINE:g} s"):
            session.post(trickling_stash.url, json={"query": "{ findScenes { count } }"}, timeout=5.0)
    finally:
        session.close()
    assert time.monotonic() - started < DEADLINE + TRICKLE + 0.5  # the deadline, not 5 s per byte


def test_a_deadline_must_be_positive():
    with pytest.raises(ValueError, match="positive number of seconds"):
        apply_deadline(requests.Session(), 0)


def test_a_plex_request_keeps_to_the_deadline_whatever_its_per_read_timeout():
    with PlexTestServer(token="plex-deadline-token", initial_mode="slow", delay=3.0) as plex_server:
        plex = PlexConnection(plex_server.url, plex_server.token, timeout=5.0, deadline=DEADLINE)
        started = time.monotonic()
        try:
            with pytest.raises(PlexTemporaryError, match=f"within {DEADLINE:g} s"):
                plex.query("/identity")
        finally:
            plex.close()
    assert time.monotonic() - started < DEADLINE + 1.0  # not the 3 s the server takes, nor the 5 s a read may


def test_an_answer_whose_server_closes_the_connection_is_read_whole():
    """A ``Connection: close`` answer: http.client closes the connection before reading the body.

    The server sends the headers, then waits to see whether the client closes its socket
    before asking for the body (a closed socket reads as end of file at once). Only then, or
    after a bound if the client keeps it open as it should, does it send the body.
    """
    body = b"x" * 5000
    listener = socket.create_server(("127.0.0.1", 0))
    closed_early: list[bool] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
            conn.settimeout(0.5)  # a bound: a client that keeps the socket open sends nothing more
            try:
                closed_early.append(conn.recv(1) == b"")
            except socket.timeout:
                closed_early.append(False)
            try:
                conn.sendall(body)
            except OSError:
                pass

    server = threading.Thread(target=serve)
    server.start()
    session = apply_deadline(requests.Session(), 5.0)
    try:
        answer = session.get(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=5.0)
    finally:
        server.join()
        listener.close()
        session.close()
    assert closed_early == [False]
    assert answer.content == body
