"""A loopback HTTP endpoint that records what Apprise's ``json://`` service posts to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["NotifyEndpoint"]


class NotifyEndpoint:
    """Records each POSTed JSON body; ``status`` is what it answers, ``hang`` makes it never answer."""

    def __init__(self, status: int = 200, hang: bool = False) -> None:
        self.status, self.hang = status, hang
        self.messages: list[dict[str, Any]] = []
        self._release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.messages.append(json.loads(body))
                if endpoint.hang:
                    endpoint._release.wait(10)
                    return
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "hook", auth: str = "") -> str:
        """The ``json://`` URL of this endpoint (``auth`` as ``user:password``)."""
        return f"json://{auth + '@' if auth else ''}127.0.0.1:{self._server.server_address[1]}/{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def __enter__(self) -> "NotifyEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        try:  # wakes serve_forever at once (an accept on it then fails, which it ignores) instead of at its next poll
            self._server.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
