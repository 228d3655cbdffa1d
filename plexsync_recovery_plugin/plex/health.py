"""Is Plex answering, and does it take our token? The probe recovery gates on, and a Plex client
that survives Plex being down.

Where PlexSync keeps its own ``plex/health.py``, so a PlexSync developer finds it here.

``probe_plex`` asks Plex's ``/identity`` and tells three states apart: up, down (refused,
timed out, 5xx while Plex loads its database) and token rejected (401/403). Plex answers
``/identity`` without a token, so a wrong token shows only where the client first builds its
``PlexServer``, whose constructor requests ``/`` with the token: the probe goes through that
lazy build (``PlexConnection.query``, or the ``.server`` property of PlexSync's own client
wrapper) and so sees the 401.

``plexapi.server.PlexServer`` talks to the server in its constructor, so it cannot be built
while Plex is down. ``PlexConnection`` builds it on first use and again after any failure;
every request it makes has an overall deadline (``http_deadline``).

``check_plex_health`` is the seed's gate and never raises; ``plex_gate`` is the gate
``RecoveryPlugin`` runs: the same answer, except that a refused token raises the
``ConfigurationError`` that stops the run (see ``errors``), since waiting cannot fix it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..errors import ConfigurationError, answer_excerpt, plex_token_rejected
from ..http_deadline import apply_deadline
from ..http_url import DEFAULT_REQUEST_DEADLINE, split_http_url
from ..redaction import clean_secret, register_secret, register_url, url_for_display
from .exceptions import PlexAuthError, PlexPermissionError, translate_plex_error

__all__ = [
    "IDENTITY_PATH",
    "PLEX_DOWN",
    "PLEX_TOKEN_REJECTED",
    "PLEX_UP",
    "PlexConnection",
    "PlexProbe",
    "SupportsQuery",
    "check_plex_health",
    "plex_gate",
    "probe_plex",
    "token_rejection",
]

logger = logging.getLogger(__name__)

IDENTITY_PATH = "/identity"

#: Plex answered ``/identity``.
PLEX_UP = "up"
#: Plex did not answer usefully: refused, timed out, or an error status other than 401/403.
PLEX_DOWN = "down"
#: Plex answered, but refused the token (401, or 403): fixing the token is the cure, not waiting.
PLEX_TOKEN_REJECTED = "token_rejected"


class SupportsQuery(Protocol):
    """Anything that can run a Plex request: ``PlexServer`` or ``PlexConnection``."""

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Request ``key`` from Plex."""


@dataclass(frozen=True)
class PlexProbe:
    """What one probe of Plex found.

    Attributes:
        state: ``PLEX_UP``, ``PLEX_DOWN`` or ``PLEX_TOKEN_REJECTED``.
        latency_ms: How long Plex took to answer (0.0 unless up).
        detail: Why it is not up: the error's type and first line (never the token).
    """

    state: str
    latency_ms: float = 0.0
    detail: str = ""

    @property
    def healthy(self) -> bool:
        """Whether Plex answered its health check."""
        return self.state == PLEX_UP


def _query_identity(plex_client: Any, timeout: float) -> Any:
    """Ask ``/identity`` through whatever Plex object the caller holds."""
    if plex_client is None:
        raise ConnectionError("no Plex client is configured")
    query = getattr(plex_client, "query", None)
    if callable(query):  # PlexServer, PlexConnection
        return query(IDENTITY_PATH, timeout=timeout)
    # PlexSync's client wrapper: the PlexServer is built lazily behind ``.server``.
    return plex_client.server.query(IDENTITY_PATH, timeout=timeout)


def probe_plex(plex_client: Any, timeout: float = 5.0) -> PlexProbe:
    """Probe Plex's ``/identity`` and classify the answer; never raises.

    Args:
        plex_client: A ``PlexServer``, a ``PlexConnection``, PlexSync's client wrapper (a
            ``.server`` holding the ``PlexServer``), or anything with ``query(path, timeout=)``.
        timeout: Seconds to wait for the answer (a wrapper builds its server with its own timeout).

    Returns:
        The probe's state, latency and, when not up, a short detail.
    """
    started = time.perf_counter()
    try:
        _query_identity(plex_client, timeout)
    except Exception as error:
        translated = translate_plex_error(error)
        rejected = isinstance(translated, (PlexAuthError, PlexPermissionError))
        detail = f"{type(translated).__name__}: {answer_excerpt(str(translated))}"  # masked, then cut
        logger.debug("Plex probe: %s", detail)
        return PlexProbe(PLEX_TOKEN_REJECTED if rejected else PLEX_DOWN, 0.0, detail)
    return PlexProbe(PLEX_UP, (time.perf_counter() - started) * 1000.0)


def check_plex_health(plex_client: Any, timeout: float = 5.0) -> tuple[bool, float]:
    """Probe Plex's ``/identity`` endpoint (the recovery gate).

    Args:
        plex_client: As for ``probe_plex``.
        timeout: Seconds to wait for the answer.

    Returns:
        ``(True, latency_ms)`` when Plex answered, else ``(False, 0.0)``; never raises.
    """
    probe = probe_plex(plex_client, timeout)
    if not probe.healthy:
        logger.info("Plex health check failed: %s", probe.detail.split(":", 1)[0])
        if probe.state == PLEX_TOKEN_REJECTED:
            logger.error("Plex rejected the token: %s", probe.detail)
    return probe.healthy, probe.latency_ms


def token_rejection(plex_client: Any, probe: PlexProbe | None = None) -> ConfigurationError:
    """The ``ConfigurationError`` for a token ``plex_client``'s Plex refused (or for none given)."""
    url = getattr(plex_client, "baseurl", None) or getattr(plex_client, "_baseurl", None) or "the configured URL"
    given = getattr(plex_client, "token_given", None)
    if given is None:
        given = bool(getattr(plex_client, "_token", None) or getattr(getattr(plex_client, "server", None), "_token", None))
    error = plex_token_rejected(str(url), bool(given))
    if probe is not None:
        logger.debug("Plex refused the token: %s", probe.detail)
    return error


def plex_gate(plex_client: Any, timeout: float = 5.0) -> tuple[bool, float]:
    """``check_plex_health``, except that a refused token stops the run: the gate ``RecoveryPlugin`` uses.

    Returns:
        ``(True, latency_ms)`` when Plex answered, ``(False, 0.0)`` when it is down.

    Raises:
        ConfigurationError: Plex answered 401/403 to the token (or to none).
    """
    probe = probe_plex(plex_client, timeout)
    if probe.state == PLEX_TOKEN_REJECTED:
        raise token_rejection(plex_client, probe)
    if not probe.healthy:
        logger.info("Plex health check failed: %s", probe.detail.split(":", 1)[0])
    return probe.healthy, probe.latency_ms


class PlexConnection:
    """A Plex client built lazily and rebuilt after any failure.

    Failures are raised as the project's ``PlexError`` types. The token (and a password in
    the URL) is stripped of surrounding whitespace, never part of ``repr``, and masked in
    every log record of the package (see ``redaction``). ``timeout`` bounds each wait for
    Plex; ``deadline`` bounds a whole request, connecting and reading the answer included.
    """

    def __init__(
        self,
        baseurl: str,
        token: str | None,
        *,
        timeout: float = 5.0,
        factory: Callable[..., Any] | None = None,
        deadline: float = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        """
        Raises:
            ValueError: ``baseurl`` is not an http(s) URL with a host and a valid port.
        """
        register_url(baseurl)
        split_http_url(baseurl, "Plex", "http://host:32400")
        self.baseurl = baseurl.rstrip("/")
        self._token = clean_secret(token)
        register_secret(self._token, "Plex token")
        self.timeout = timeout
        self.deadline = deadline
        self._factory = factory
        self._server: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PlexConnection({url_for_display(self.baseurl)!r})"

    @property
    def token_given(self) -> bool:
        """Whether a token is configured (Plex's refusal then means a wrong one, not a missing one)."""
        return self._token is not None

    def _connect(self) -> Any:
        if self._factory is not None:
            return self._factory(self.baseurl, self._token, timeout=self.timeout)
        import requests
        from plexapi.server import PlexServer

        session = apply_deadline(requests.Session(), self.deadline)  # ours: closed by close(), bounded per request
        try:
            return PlexServer(self.baseurl, self._token, session=session, timeout=self.timeout)  # type: ignore[no-untyped-call]
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
