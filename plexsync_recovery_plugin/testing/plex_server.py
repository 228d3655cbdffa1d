"""A Plex Media Server stand-in on 127.0.0.1, and the HTTP plumbing the test servers share.

Why: the plugin has to survive a Plex server that is down, still loading its database,
slow, or rejecting the token. Mocking ``requests`` would only test the mocks, so this
module runs a real HTTP server that answers the endpoints ``plexapi.server.PlexServer``
uses to connect (``/`` and ``/identity``) and whose failure mode a test can switch while
clients are talking to it.

:class:`LoopbackHTTPService` is the reusable part: it owns one loopback port for its whole
life, serves HTTP/1.1 keep-alive connections on daemon threads, can stop listening (so
clients get a real "connection refused") and listen again on the same port, and leaves no
thread or socket behind when stopped. :mod:`.stash_server` builds on it too.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

__all__ = ["DEFAULT_SLOW_DELAY", "PLEX_MODES", "LoopbackHTTPService", "PlexTestServer", "QuietRequestHandler"]

LOGGER = logging.getLogger("plexsync_recovery_plugin.testing")

#: Seconds a ``"slow"`` server waits before answering, unless told otherwise.
DEFAULT_SLOW_DELAY = 2.0

#: Modes :meth:`PlexTestServer.set_mode` accepts.
PLEX_MODES = frozenset({"up", "down", "starting", "slow", "revoked"})

# How often the accept loop checks for shutdown; bounds how long going "down" takes.
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

    def drop_connection(self) -> None:
        """Close the connection without answering, as a server that dies mid-request does."""
        self.close_connection = True


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


class _PlexRequestHandler(QuietRequestHandler):
    """Answers ``GET /`` and ``GET /identity`` the way Plex Media Server does."""

    server_version = "PlexMediaServer"

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        """Route one GET request according to the server's current mode."""
        plex: PlexTestServer = self.service
        mode, delay = plex._mode_and_delay()
        if mode == "slow" and not plex._pause(delay):
            self.drop_connection()
            return
        if mode == "starting":
            self.respond(503, plex._starting_body, _XML)
            return
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        token = self.headers.get("X-Plex-Token") or parse_qs(url.query).get("X-Plex-Token", [None])[0]
        if mode == "revoked" and token is not None:
            # The server no longer accepts any token it is sent, /identity included.
            self.respond(401, _UNAUTHORIZED_BODY, "text/html; charset=utf-8")
            return
        if path == "/identity":
            # Plex answers /identity without a token: clients use it to find servers.
            self.respond(200, plex._identity_body, _XML, _PLEX_HEADERS)
            return
        if not plex._token_matches(token):
            self.respond(401, _UNAUTHORIZED_BODY, "text/html; charset=utf-8")
        elif path == "/":
            self.respond(200, plex._root_body, _XML, _PLEX_HEADERS)
        else:
            self.respond(404, _NOT_FOUND_BODY, "text/html; charset=utf-8")


_XML = "text/xml;charset=utf-8"
_PLEX_HEADERS = {"X-Plex-Protocol": "1.0", "Cache-Control": "no-cache"}
_UNAUTHORIZED_BODY = (
    b"<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
)
_NOT_FOUND_BODY = b"<html><head><title>Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


def _xml_document(tag: str, attributes: Mapping[str, str]) -> bytes:
    element = ElementTree.Element(tag, dict(attributes))
    return bytes(ElementTree.tostring(element, encoding="utf-8", xml_declaration=True))


class PlexTestServer(LoopbackHTTPService):
    """A fake Plex Media Server on 127.0.0.1 whose health a test can switch at run time.

    Modes (see :meth:`set_mode`):

    * ``"up"``: answers normally.
    * ``"down"``: not listening, so connections are refused; open keep-alive connections
      are closed. Going up again listens on the same port.
    * ``"starting"``: every request gets ``503``, as Plex answers while loading its database.
    * ``"slow"``: every answer is delayed by ``delay`` seconds.
    * ``"revoked"``: the token was revoked (or the server re-claimed): every request that
      carries a token, even the right one and even to ``/identity``, gets ``401``; a client
      that connected before keeps its ``PlexServer`` and meets the 401 on its next request.

    ``GET /`` needs the token (``X-Plex-Token`` header or query parameter) and answers the
    server description ``PlexServer`` parses; ``GET /identity`` answers without a token,
    as real Plex does; any other path is ``404`` (``401`` without a valid token).

    Example:
        >>> with PlexTestServer() as plex:  # doctest: +SKIP
        ...     server = plexapi.server.PlexServer(plex.url, plex.token)
        ...     plex.set_mode("down")
    """

    handler_class = _PlexRequestHandler

    def __init__(
        self,
        token: str = "plex-test-token",
        *,
        machine_identifier: str | None = None,
        friendly_name: str = "PlexSync Test Server",
        version: str = "1.40.0.0000-test",
        host: str = "127.0.0.1",
        initial_mode: str = "up",
        delay: float = DEFAULT_SLOW_DELAY,
    ) -> None:
        """Describe the server; call :meth:`start` (or use ``with``) to run it.

        Args:
            token: The only ``X-Plex-Token`` accepted.
            machine_identifier: Reported ``machineIdentifier``; a random 40-hex-digit id if None.
            friendly_name: Reported ``friendlyName``.
            version: Reported ``version``.
            host: Loopback address to bind.
            initial_mode: Mode at start; ``"down"`` reserves the port without listening.
            delay: Seconds of delay in ``"slow"`` mode.

        Raises:
            ValueError: Unknown mode or negative delay.
        """
        super().__init__(host=host)
        _check_mode(initial_mode)
        self._token = token
        # (mode, delay) replaced as a whole, so handlers read it without a lock: a handler
        # must never wait for _state_lock, which set_mode holds while joining handlers.
        self._mode_state = (initial_mode, _check_delay(delay))
        self.machine_identifier = machine_identifier or secrets.token_hex(20)
        self.friendly_name = friendly_name
        self.version = version
        self._identity_body = _xml_document(
            "MediaContainer",
            {"size": "0", "claimed": "0", "machineIdentifier": self.machine_identifier, "version": version},
        )
        self._root_body = _xml_document("MediaContainer", self._root_attributes())
        self._starting_body = _xml_document(
            "Response",
            {
                "code": "503",
                "title": "Maintenance",
                "status": "Plex Media Server is currently running startup maintenance tasks.",
            },
        )

    @property
    def url(self) -> str:
        """Base URL for ``PlexServer``, e.g. ``http://127.0.0.1:40213``."""
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """The accepted ``X-Plex-Token``."""
        return self._token

    @property
    def mode(self) -> str:
        """The current mode: ``"up"``, ``"down"``, ``"starting"``, ``"slow"`` or ``"revoked"``."""
        return self._mode_state[0]

    @property
    def delay(self) -> float:
        """Seconds of delay applied in ``"slow"`` mode."""
        return self._mode_state[1]

    def set_mode(self, mode: str, delay: float | None = None) -> None:
        """Switch the failure mode; takes effect for the next request.

        Going ``"down"`` closes the listening socket and every open connection (requests in
        flight are dropped unanswered) and returns once they are closed; leaving ``"down"``
        listens again on the same port.

        Args:
            mode: ``"up"``, ``"down"``, ``"starting"``, ``"slow"`` or ``"revoked"``.
            delay: New delay for ``"slow"`` mode; None keeps the current one (default 2.0 s).

        Raises:
            ValueError: Unknown mode or negative delay.
        """
        _check_mode(mode)
        with self._state_lock:
            new_delay = self._mode_state[1] if delay is None else _check_delay(delay)
            self._mode_state = (mode, new_delay)
            self._set_listening(mode != "down")
        LOGGER.debug("%r mode is now %s", self, mode)

    def _listening_wanted(self) -> bool:
        return self._mode_state[0] != "down"

    def _mode_and_delay(self) -> tuple[str, float]:
        return self._mode_state

    def _token_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self._token.encode())

    def _root_attributes(self) -> dict[str, str]:
        return {
            "size": "0",
            "allowCameraUpload": "0",
            "allowChannelAccess": "0",
            "allowMediaDeletion": "1",
            "allowSharing": "0",
            "allowSync": "0",
            "backgroundProcessing": "1",
            "certificate": "0",
            "companionProxy": "1",
            "eventStream": "1",
            "friendlyName": self.friendly_name,
            "hubSearch": "1",
            "machineIdentifier": self.machine_identifier,
            "multiuser": "1",
            "myPlex": "0",
            "myPlexMappingState": "unknown",
            "myPlexSigninState": "none",
            "myPlexSubscription": "0",
            "platform": "Linux",
            "platformVersion": "test",
            "pluginHost": "0",
            "readOnlyLibraries": "0",
            "requestParametersInCookie": "1",
            "streamingBrainVersion": "2",
            "sync": "0",
            "transcoderActiveVideoSessions": "0",
            "transcoderAudio": "1",
            "transcoderPhoto": "1",
            "transcoderSubtitles": "1",
            "transcoderVideo": "1",
            "updatedAt": str(int(time.time())),
            "updater": "0",
            "version": self.version,
            "voiceSearch": "0",
        }


def _check_mode(mode: str) -> None:
    if mode not in PLEX_MODES:
        raise ValueError(f"unknown Plex mode {mode!r}; expected one of {sorted(PLEX_MODES)}")


def _check_delay(delay: float) -> float:
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay!r}")
    return float(delay)
