"""A Plex Media Server stand-in on 127.0.0.1 whose failure mode a test can switch.

Why: the plugin has to survive a Plex server that is down, still loading its database,
slow, or rejecting the token. Mocking ``requests`` would only test the mocks, so this
module runs a real HTTP server (a :class:`~.loopback_http.LoopbackHTTPService`) that
answers the endpoints ``plexapi.server.PlexServer`` uses to connect (``/`` and
``/identity``) and whose failure mode a test can switch while clients are talking to it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from .loopback_http import LOGGER, LoopbackHTTPService, QuietRequestHandler

__all__ = ["DEFAULT_SLOW_DELAY", "PLEX_MODES", "LoopbackHTTPService", "PlexTestServer", "QuietRequestHandler"]

#: Seconds a ``"slow"`` server waits before answering, unless told otherwise.
DEFAULT_SLOW_DELAY = 2.0

#: Modes :meth:`PlexTestServer.set_mode` accepts.
PLEX_MODES = frozenset({"up", "down", "starting", "slow", "revoked"})


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
            self.respond(503, plex.starting_body, _XML)
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
        self.starting_body = _xml_document(
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
