"""An overall deadline for every Plex and Stash request: connecting plus the whole answer.

``requests``' ``timeout`` bounds each wait for the next bytes, not the request: a server that
sends one byte every two seconds keeps a request alive for ever, and a recovery holding
``recovery.lock`` with it. ``apply_deadline`` fixes that for one ``requests.Session`` (the
Plex client's and the Stash client's both go through it): each request gets a deadline, and
every read and write on its socket waits at most until then. A request still unfinished at
its deadline raises ``DeadlineExceeded`` (a ``requests.Timeout``), which both clients already
treat as "no answer": Plex down for the health gate, a Stash error that defers the window.

How: the session's adapters open connections whose socket is wrapped, so each ``recv`` and
``send`` is given ``min(per-read timeout, time left)``; the deadline of the request running on
the thread is kept in a thread-local, since one session's connections serve many requests.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .http_url import DEFAULT_REQUEST_DEADLINE

__all__ = ["DEFAULT_REQUEST_DEADLINE", "DeadlineExceeded", "apply_deadline"]


_local = threading.local()


class DeadlineExceeded(requests.Timeout):
    """The request did not complete (connection and whole answer) within its deadline."""


@contextmanager
def _deadline(at: float) -> Iterator[None]:
    previous = getattr(_local, "at", None)
    _local.at = at if previous is None else min(previous, at)
    try:
        yield
    finally:
        _local.at = previous


class _DeadlineSocket:
    """A connected socket whose reads and writes never wait past the thread's current deadline."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout  # type: ignore[no-any-return]

    def _arm(self) -> None:
        at = getattr(_local, "at", None)
        if at is None:
            self._sock.settimeout(self._timeout)
            return
        left = at - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request's deadline has passed")
        self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)  # type: ignore[no-any-return]

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(size, flags)  # type: ignore[no-any-return]

    def send(self, data: Any, flags: int = 0) -> int:
        self._arm()
        return self._sock.send(data, flags)  # type: ignore[no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if mode in ("rb", "br"):  # what http.client reads the answer through: over this wrapper
            # Counted on the real socket, as socket.makefile counts it: http.client closes the
            # connection of a "Connection: close" answer before its body is read, and the socket
            # must stay open until this reader is closed (else: EBADF, "Bad file descriptor").
            self._sock._io_refs += 1
            return io.BufferedReader(socket.SocketIO(self, "rb"), buffering or io.DEFAULT_BUFFER_SIZE)  # type: ignore[arg-type]
        return self._sock.makefile(mode, buffering, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections keep to the deadline of the request using them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


def apply_deadline(session: requests.Session, seconds: float) -> requests.Session:
    """Give every request of ``session`` an overall deadline of ``seconds``; return the session.

    A request's own ``timeout`` (per wait) still applies, capped by the time left.

    Raises:
        ValueError: ``seconds`` is not a positive number.
    """
    if not seconds > 0:
        raise ValueError(f"a request deadline must be a positive number of seconds, got {seconds!r}")
    for prefix in ("http://", "https://"):
        session.mount(prefix, _DeadlineAdapter())
    send = session.request

    def request_within_deadline(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        at = time.monotonic() + seconds
        timeout = kwargs.get("timeout")
        kwargs["timeout"] = seconds if timeout is None else _capped(timeout, seconds)
        with _deadline(at):
            try:
                return send(method, url, *args, **kwargs)
            except requests.RequestException as error:
                if time.monotonic() >= at - 0.01 and not isinstance(error, DeadlineExceeded):
                    raise DeadlineExceeded(f"no complete answer within {seconds:g} s") from error
                raise

    session.request = request_within_deadline  # type: ignore[method-assign, assignment]
    return session


def _capped(timeout: Any, seconds: float) -> Any:
    if isinstance(timeout, (int, float)):
        return min(float(timeout), seconds)
    if isinstance(timeout, tuple):
        return tuple(seconds if part is None else min(float(part), seconds) for part in timeout)
    return timeout
