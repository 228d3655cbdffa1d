"""The request handler both test servers share: HTTP/1.1 keep-alive, quiet, counted.

:class:`QuietRequestHandler` sends ``http.server``'s log lines to ``logging`` at DEBUG
instead of stderr, answers with a correct ``Content-Length``, and counts each answer on
the :class:`~.loopback_http.LoopbackHTTPService` it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Callable

from .loopback_http import LOGGER

if TYPE_CHECKING:
    from .loopback_http import _TrackingHTTPServer

__all__ = ["QuietRequestHandler"]


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
