"""A loopback HTTP service that can stop and resume listening, and the request handler both test servers share.

Why: a test server must be able to go "down" (clients get a real "connection refused") and
come back on the same port, and must leave no thread or socket behind when stopped.
``LoopbackHTTPService`` owns one loopback port for its whole life, serves HTTP/1.1
keep-alive connections on daemon threads it tracks, and joins them when it stops listening;
``QuietRequestHandler`` logs at DEBUG, answers with a correct ``Content-Length`` and counts
each answer.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, ClassVar, Self

__all__ = ['LOGGER', 'LoopbackHTTPService', 'QuietRequestHandler']


# ==== loopback http =============================================================================
# A loopback HTTP service that can stop and resume listening: the base of both test servers.
#
# Why: a test server must be able to go "down" (clients get a real "connection refused") and
# come back on the same port, and must leave no thread or socket behind when stopped.
# :class:`LoopbackHTTPService` owns one loopback port for its whole life, serves HTTP/1.1
# keep-alive connections on daemon threads it tracks, and joins them when it stops listening.
# Its handlers are ``QuietRequestHandler`` subclasses;
# :mod:`.plex_server` and :mod:`.stash_server` build on both.

LOGGER = logging.getLogger("plexsync_recovery_plugin.dev")

# How often the accept loop checks for shutdown when nothing wakes it (stopping wakes it at once,
# see _wake_accept_loop).
_POLL_INTERVAL = 0.05
# Longest wait for one connection thread to finish after its socket was shut down.
_JOIN_TIMEOUT = 5.0


class _TrackingHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` on an already bound socket, reporting connections to its service."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        sock: socket.socket,
        handler_class: type[BaseHTTPRequestHandler],
        service: LoopbackHTTPService,
    ) -> None:
        address = sock.getsockname()[:2]
        super().__init__(address, handler_class, bind_and_activate=False)
        # TCPServer made a socket of its own; the service's bound socket replaces it.
        self.socket.close()
        self.socket = sock
        self.server_name, self.server_port = address
        self.service = service

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the accepted connection to the service, which runs and tracks its thread."""
        self.service._spawn_connection_thread(self, request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log at DEBUG instead of printing a traceback (clients hanging up is routine here)."""
        LOGGER.debug("%s: connection from %s ended with an error", self.service, client_address,
                     exc_info=True)


def _wake_accept_loop(httpd: ThreadingHTTPServer) -> None:
    """Make ``serve_forever`` notice a ``shutdown()`` now rather than at its next poll.

    Shutting the listening socket down wakes the loop's ``select`` (an ``accept`` then fails,
    which the loop ignores), so ``shutdown()`` returns at once instead of after up to
    ``_POLL_INTERVAL``: stopping a server costs a test nothing. The socket is closed right
    after; a connection not yet accepted is refused either way.
    """
    try:
        httpd.socket.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected on this platform, or already closed: the poll still ends the loop
        pass


class LoopbackHTTPService:
    """An HTTP server on one loopback port that can stop and resume listening.

    :meth:`start` binds an ephemeral port and keeps it for the object's life: while the
    service is not listening the socket stays bound without ``listen()``, so clients are
    refused and no other program can take the port; listening again reuses that socket.
    Each accepted connection runs on its own daemon thread, which is tracked so that
    going down or stopping shuts the connection and joins the thread.

    Subclasses set :attr:`handler_class` and call :meth:`_set_listening` from their
    ``set_mode``; :meth:`_listening_wanted` tells :meth:`start` whether to listen at once.
    """

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        """Prepare the service; nothing is bound until :meth:`start`.

        Args:
            host: Address to bind; keep it a loopback address.
        """
        self._host = host
        self._port: int | None = None
        self._state_lock = threading.RLock()
        self._conn_lock = threading.Lock()
        self._reserved: socket.socket | None = None
        self._httpd: _TrackingHTTPServer | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._interrupt = threading.Event()
        self._requests = 0
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "unbound"
        return f"{type(self).__name__}({self._host}:{port})"

    # -- public API -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The bound address, e.g. ``"127.0.0.1"``."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port, fixed from :meth:`start` until :meth:`stop`.

        Raises:
            RuntimeError: The server was not started.
        """
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def request_count(self) -> int:
        """How many HTTP requests were answered so far (thread-safe)."""
        with self._conn_lock:
            return self._requests

    def start(self) -> Self:
        """Bind an ephemeral port, and listen on it unless the server is in ``"down"`` mode.

        Returns:
            The server itself, so ``server = PlexTestServer().start()`` works.

        Raises:
            RuntimeError: Already started, or stopped (a stopped server cannot restart).
        """
        with self._state_lock:
            if self._started:
                raise RuntimeError(f"{self!r} was already started")
            self._reserved = self._bind(0)
            self._port = self._reserved.getsockname()[1]
            self._started = True
            if self._listening_wanted():
                self._listen()
        LOGGER.debug("%r started", self)
        return self

    def stop(self) -> None:
        """Close every connection and socket and join every thread; safe to call twice."""
        with self._state_lock:
            if not self._started or self._stopped:
                return
            self._stopped = True
            self._unlisten(keep_port=False)
            if self._reserved is not None:
                self._reserved.close()
                self._reserved = None
        LOGGER.debug("%r stopped", self)

    def __enter__(self) -> Self:
        with self._state_lock:
            if not self._started:
                self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for subclasses and handlers ----------------------------------------------------

    def _listening_wanted(self) -> bool:
        """Whether :meth:`start` should listen right away; subclasses look at their mode."""
        return True

    def _set_listening(self, listening: bool) -> None:
        """Start or stop listening (on the same port); a no-op before start or after stop."""
        with self._state_lock:
            if not self._started or self._stopped:
                return
            if listening:
                self._listen()
            else:
                self._unlisten(keep_port=True)

    def _pause(self, seconds: float) -> bool:
        """Sleep in a handler; cut short when the server goes down or stops.

        Returns:
            True if the full time passed, False if the server is going away.
        """
        return not self._interrupt.wait(seconds)

    def _count_request(self) -> None:
        with self._conn_lock:
            self._requests += 1

    # -- socket and thread plumbing ---------------------------------------------------------

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Lets the port be bound again at once although closed connections linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def _listen(self) -> None:
        if self._httpd is not None:
            return
        sock = self._reserved if self._reserved is not None else self._bind(self.port)
        self._reserved = None
        httpd = _TrackingHTTPServer(sock, self.handler_class, self)
        try:
            httpd.server_activate()
        except BaseException:
            httpd.server_close()
            raise
        self._interrupt.clear()
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{type(self).__name__}-{self.port}-accept",
            daemon=True,
        )
        self._httpd, self._accept_thread = httpd, thread
        thread.start()
        LOGGER.debug("%r listening", self)

    def _unlisten(self, *, keep_port: bool) -> None:
        httpd, thread = self._httpd, self._accept_thread
        if httpd is not None and thread is not None:
            self._httpd = self._accept_thread = None
            _wake_accept_loop(httpd)
            httpd.shutdown()
            thread.join()
            httpd.server_close()  # closes the listening socket
            self._interrupt.set()  # wakes handlers sleeping in "slow" mode
            with self._conn_lock:
                for conn in self._connections:
                    try:
                        conn.shutdown(socket.SHUT_RDWR)  # wakes handlers waiting for the next request
                    except OSError:
                        pass
                threads = list(self._threads)
            for worker in threads:
                worker.join(_JOIN_TIMEOUT)
            with self._conn_lock:
                self._threads = {worker for worker in self._threads if worker.is_alive()}
                if self._threads:
                    LOGGER.warning("%r: %d connection threads did not finish", self, len(self._threads))
            LOGGER.debug("%r not listening", self)
        if keep_port and self._reserved is None:
            self._reserved = self._bind(self.port)

    def _spawn_connection_thread(
        self, httpd: _TrackingHTTPServer, request: socket.socket, client_address: Any
    ) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(httpd, request, client_address),
            name=f"{type(self).__name__}-{self.port}-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._threads = {worker for worker in self._threads if worker.is_alive()}
            self._threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(
        self, httpd: _TrackingHTTPServer, request: socket.socket, client_address: Any
    ) -> None:
        try:
            httpd.finish_request(request, client_address)
        except Exception:
            httpd.handle_error(request, client_address)
        finally:
            # Closing under the lock means _unlisten never shuts down a socket being closed.
            with self._conn_lock:
                self._connections.discard(request)
                httpd.shutdown_request(request)


# ==== request handler ===========================================================================
# The request handler both test servers share: HTTP/1.1 keep-alive, quiet, counted.
#
# :class:`QuietRequestHandler` sends ``http.server``'s log lines to ``logging`` at DEBUG
# instead of stderr, answers with a correct ``Content-Length``, and counts each answer on
# the :class:`~.loopback_http.LoopbackHTTPService` it serves.

class QuietRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that logs through ``logging`` and counts its answers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sys_version = ""
    server: _TrackingHTTPServer

    @property
    def service(self) -> Any:
        """The :class:`LoopbackHTTPService` this request was made to."""
        return self.server.service

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Send ``http.server``'s access and error lines to DEBUG logging instead of stderr."""
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug("%s %s %s", self.service, self.address_string(), format % args)

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response with a correct ``Content-Length`` and count it.

        Args:
            status: HTTP status code.
            body: Response body.
            content_type: Value of the ``Content-Type`` header.
            headers: Extra headers.
        """
        self.service._count_request()  # before answering, so a client that got its answer sees it counted
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def respond_trickling(
        self, status: int, body: bytes, content_type: str, interval: float, going_on: Callable[[], bool]
    ) -> None:
        """Send a complete response one byte every ``interval`` seconds (headers too), then close.

        Stops early, closing the connection, when the server goes away, the client hangs up, or
        ``going_on()`` turns false (the test switched the server back to normal).
        """
        self.service._count_request()
        self.close_connection = True
        head = (
            f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        for index, byte in enumerate(head + body):
            if index and (not self.service._pause(interval) or not going_on()):
                return
            try:
                self.wfile.write(bytes((byte,)))
                self.wfile.flush()
            except OSError:
                return

    def drop_connection(self) -> None:
        """Close the connection without answering, as a server that dies mid-request does."""
        self.close_connection = True
