"""Is Plex answering? The probe recovery gates on, and a Plex client that survives Plex being down.

``plexapi.server.PlexServer`` talks to the server in its constructor, so it cannot be built
while Plex is down. ``PlexConnection`` builds it on first use and again after any failure.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Protocol

from ..http_url import split_http_url
from ..redaction import clean_secret, register_secret
from .exceptions import translate_plex_error

__all__ = ["IDENTITY_PATH", "PlexConnection", "SupportsQuery", "check_plex_health"]

logger = logging.getLogger(__name__)

IDENTITY_PATH = "/identity"


class SupportsQuery(Protocol):
    """Anything that can run a Plex request: ``PlexServer`` or ``PlexConnection``."""

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Request ``key`` from Plex."""


def check_plex_health(plex_client: SupportsQuery | None, timeout: float = 5.0) -> tuple[bool, float]:
    """Probe Plex's ``/identity`` endpoint.

    Args:
        plex_client: A ``PlexServer``, a ``PlexConnection`` or anything with ``query(path, timeout=)``.
        timeout: Seconds to wait for the answer.

    Returns:
        ``(True, latency_ms)`` when Plex answered, else ``(False, 0.0)``; never raises.
    """
    started = time.perf_counter()
    try:
        plex_client.query(IDENTITY_PATH, timeout=timeout)  # type: ignore[union-attr]
    except Exception as error:
        translated = translate_plex_error(error)
        logger.info("Plex health check failed: %s", type(translated).__name__)
        logger.debug("Plex health check error detail: %s", translated)
        return False, 0.0
    return True, (time.perf_counter() - started) * 1000.0


class PlexConnection:
    """A Plex client built lazily and rebuilt after any failure.

    Failures are raised as the project's ``PlexError`` types. The token is stripped of
    surrounding whitespace, never part of ``repr``, and masked in every log record of the
    package (see ``redaction``).
    """

    def __init__(
        self,
        baseurl: str,
        token: str | None,
        *,
        timeout: float = 5.0,
        factory: Callable[..., Any] | None = None,
    ) -> None:
        """
        Raises:
            ValueError: ``baseurl`` is not an http(s) URL with a host and a valid port.
        """
        split_http_url(baseurl, "Plex", "http://host:32400")
        self.baseurl = baseurl.rstrip("/")
        self._token = clean_secret(token)
        register_secret(self._token, "Plex token")
        self.timeout = timeout
        self._factory = factory
        self._server: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PlexConnection({self.baseurl!r})"

    def _connect(self) -> Any:
        if self._factory is not None:
            return self._factory(self.baseurl, self._token, timeout=self.timeout)
        import requests
        from plexapi.server import PlexServer

        session = requests.Session()  # ours, so that it can be closed (PlexServer never closes its own)
        try:
            return PlexServer(self.baseurl, self._token, session=session, timeout=self.timeout)
        except BaseException:
            session.close()
            raise

    def close(self) -> None:
        """Drop the server and close its HTTP session; the next call connects afresh."""
        with self._lock:
            server, self._server = self._server, None
        session = getattr(server, "_session", None)
        if session is not None and hasattr(session, "close"):
            session.close()

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Run ``PlexServer.query``, connecting first if needed.

        Raises:
            PlexError: Any failure, translated; the next call connects afresh.
        """
        try:
            with self._lock:
                if self._server is None:
                    self._server = self._connect()
                server = self._server
            return server.query(key, *args, timeout=timeout or self.timeout, **kwargs)
        except Exception as error:
            self.close()
            raise translate_plex_error(error) from error
