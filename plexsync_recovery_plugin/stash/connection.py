"""The Stash client: connecting with ``stashapi``, and every Stash failure in one plain line.

``connect_stash`` builds ``StashInterface`` with the request deadline and the plugin's own
logger, and turns what can go wrong (refused API key or session, unreachable server, a
GraphQL error) into this project's errors, once. ``describe_failure`` says in words what
``requests`` and ``stashapi`` describe with their internals.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import requests

from ..errors import (
    STASH_API_KEY,
    STASH_SESSION,
    ConfigurationError,
    answer_excerpt,
    stash_credential_rejected,
)
from ..http_deadline import DeadlineExceeded, apply_deadline
from ..http_url import DEFAULT_REQUEST_DEADLINE, split_http_url
from ..redaction import clean_secret, register_secret, register_url

__all__ = ['CallLog', 'describe_failure', 'graphql_error_text', 'StashConnection', 'StashKeyRejected', 'StashUnavailable', 'stash_connection_dict']


# ==== failure text ==============================================================================
# Stash failures in one plain line: what went wrong, in words, without the HTTP library's internals.
#
# ``requests`` describes a refused connection as ``HTTPConnectionPool(host=..., port=...): Max
# retries exceeded with url: /graphql (Caused by NewConnectionError(...))``, and ``stashapi``
# logs a GraphQL error as ``DATABASE_LOCKED:['r0'] database is locked`` and then fails with an
# ``AttributeError`` of its own. ``describe_failure`` says "connection refused", and
# ``CallLog`` holds ``stashapi``'s error lines during a call so that the call's one error can
# say "database is locked" (its lines are still logged, at DEBUG).

_STASHAPI_ERROR = re.compile(r"^(?P<code>[A-Z][A-Z_]*):(?P<path>\S*) (?P<message>.+)$", re.S)
_CONNECTION_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("Temporary failure in name resolution", "host name not found"),
    ("No route to host", "no route to host"),
    ("Connection reset", "connection reset"),
    ("RemoteDisconnected", "the connection closed without an answer"),
    ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
)


def describe_failure(error: BaseException, timeout: float | None = None) -> str:
    """A few words for why a request to Stash failed (``connection refused``, ``no answer within 10 s``)."""
    if isinstance(error, DeadlineExceeded):
        return str(error)
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s" if timeout else "no answer in time"
    if isinstance(error, (requests.ConnectionError, ConnectionError)):
        text = str(error)
        for marker, reason in _CONNECTION_REASONS:
            if marker in text:
                return reason
        return "cannot connect"
    if isinstance(error, KeyError):  # stashapi reading an answer that is not Stash's
        return "the server there does not answer like Stash (is the URL Stash's?)"
    return f"{type(error).__name__}: {answer_excerpt(str(error))}"  # a page's first line, masked, never its markup


def graphql_error_text(line: str) -> str:
    """``DATABASE_LOCKED:['r0'] database is locked`` -> ``database is locked (DATABASE_LOCKED)``."""
    match = _STASHAPI_ERROR.match(line.strip())
    if match is None:
        return line.strip()
    return f"{match['message'].strip()} ({match['code']})"


class CallLog:
    """The logger ``stashapi`` uses once connected: passes everything on, except error lines during ``holding()``.

    Those are held; the caller then logs them with ``release`` (at DEBUG when its own error
    says the same in one line, as errors when the call still gave an answer). Per thread: a
    call on another thread is not affected.
    """

    def __init__(self, target: logging.Logger) -> None:
        self._target = target
        self._local = threading.local()

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Hold the line during a call; otherwise log it as the error it is."""
        held: list[tuple[Any, tuple[Any, ...]]] | None = getattr(self._local, "held", None)
        if held is None:
            self._target.error(msg, *args, **kwargs)
        else:
            held.append((msg, args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    @contextmanager
    def holding(self) -> Iterator[list[tuple[Any, tuple[Any, ...]]]]:
        """Hold ``stashapi``'s error lines of this thread while the block runs: ``(msg, args)`` pairs."""
        previous = getattr(self._local, "held", None)
        held: list[tuple[Any, tuple[Any, ...]]] = []
        self._local.held = held
        try:
            yield held
        finally:
            self._local.held = previous

    def release(self, held: list[tuple[Any, tuple[Any, ...]]], level: int) -> str | None:
        """Log the held lines at ``level``; return the first one as plain text (None if none)."""
        for msg, args in held:
            self._target.log(level, msg, *args)
        if not held:
            return None
        msg, args = held[0]
        return graphql_error_text(str(msg) % args if args else str(msg))


# ==== connection ================================================================================
# A ``stashapi`` client that connects lazily, times out, and logs through ``logging``.
#
# ``StashInterface`` talks to Stash in its constructor (version, API key, schema introspection)
# and sets no HTTP timeout, so it is built on first use, every request gets a timeout per wait
# and an overall deadline (``http_deadline``), and a failed connection is retried on the next
# call instead of failing the whole process.
#
# A refused credential is told apart from a Stash that cannot answer: every response passes
# through the connection's session, and a 401 or 403 raises ``StashKeyRejected`` there, before
# ``stashapi`` turns it into a bare ``Exception`` (its constructor) or an empty answer. It is a
# ``ConfigurationError`` (see ``errors``) naming what was sent: the API key, Stash's plugin
# session, or nothing at all.
# Works alike with the ``stashapi`` and the ``stashapp-tools`` distributions of the module.

logger = logging.getLogger(__name__)
_stashapi_logger = logging.getLogger("plexsync_recovery_plugin.stashapi")


class StashUnavailable(Exception):
    """Stash could not be asked at all (connection refused, timeout, failed login)."""


class StashKeyRejected(StashUnavailable, ConfigurationError):
    """Stash answered 401 or 403: the API key or the session is wrong, or none was sent.

    Attributes:
        status: The HTTP status (401 or 403).
        credential: ``errors.STASH_API_KEY`` or ``errors.STASH_SESSION`` (the API key's when none was sent).
    """

    def __init__(self, url: str, status: int, reason: str, credential: str | None = STASH_API_KEY) -> None:
        translated = stash_credential_rejected(url, status, reason, credential)
        ConfigurationError.__init__(self, str(translated), translated.credential)
        self.status = status


#: HTTP statuses that mean "your credentials are not accepted", not "Stash is unwell".
_REJECTED = (401, 403)


def stash_connection_dict(url: str, api_key: str | None = None, session_cookie: str | None = None) -> dict[str, Any]:
    """Turn ``http://host:port[/graphql]`` into the connection dict ``StashInterface`` takes.

    ``session_cookie`` is the value of the ``session`` cookie Stash hands a plugin it runs.

    Raises:
        ValueError: The URL has no http(s) scheme, no host, or a bad port.
    """
    parts = split_http_url(url, "Stash", "http://host:9999")
    conn: dict[str, Any] = {
        "Scheme": parts.scheme,
        "Host": parts.hostname,
        "Port": parts.port or (443 if parts.scheme == "https" else 9999),
        "Logger": _stashapi_logger,
    }
    api_key = clean_secret(api_key)
    if api_key:
        conn["ApiKey"] = api_key
    if session_cookie:
        conn["SessionCookie"] = {"Name": "session", "Value": session_cookie}
    return conn


def _credential(conn: dict[str, Any]) -> str | None:
    """What a connection dict sends Stash: its API key, else its session cookie, else nothing."""
    if conn.get("ApiKey"):
        return STASH_API_KEY
    return STASH_SESSION if conn.get("SessionCookie") else None


def _timed_interface_class(timeout: float, base_url: str, deadline: float, credential: str | None) -> Any:
    from stashapi.stashapp import StashInterface

    class _TimedStashInterface(StashInterface):
        """StashInterface whose HTTP session bounds every request and raises on 401/403."""

        @property
        def s(self) -> Any:
            return self.__dict__["_session"]

        @s.setter
        def s(self, session: Any) -> None:
            send = apply_deadline(session, deadline).request

            def request_with_timeout(method: str, url: str, **kwargs: Any) -> Any:
                kwargs.setdefault("timeout", timeout)
                response = send(method, url, **kwargs)
                if response.status_code in _REJECTED:
                    response.close()
                    raise StashKeyRejected(base_url, response.status_code, response.reason or "", credential)
                return response

            session.request = request_with_timeout
            self.__dict__["_session"] = session

    return _TimedStashInterface


class _ConnectTimeLog:
    """The logger ``stashapi`` gets while connecting: passes everything on but holds errors back.

    When connecting fails, the ``StashUnavailable`` raised says why, and stashapi's own error
    lines ("Could not connect ...", then the error again) would only repeat it: they are
    logged at DEBUG. When it succeeds they are logged as the errors they are.
    """

    def __init__(self, target: logging.Logger) -> None:
        self._target = target
        self._held: list[tuple[Any, tuple[Any, ...]]] = []

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._held.append((msg, args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def release(self, level: int) -> None:
        for msg, args in self._held:
            self._target.log(level, msg, *args)
        self._held.clear()


def _close_session(client: Any) -> None:
    session = client.__dict__.get("_session")
    if session is not None:
        session.close()


class StashConnection:
    """Lazily connected Stash client with the few methods recovery needs.

    ``find_scene`` and ``call_GQL`` behave as ``StashInterface``'s; connection failures
    raise ``StashUnavailable`` (``StashKeyRejected`` when Stash answers 401/403) and the
    next call connects afresh. The API key and the session cookie (what Stash gives the
    plugins it runs) are stripped of surrounding whitespace, never part of ``repr``, and
    masked in every log record of the package (see ``redaction``).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        session_cookie: str | None = None,
        deadline: float = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        register_url(url)
        self._conn = stash_connection_dict(url, api_key, session_cookie)
        register_secret(self._conn.get("ApiKey"), "Stash API key")
        register_secret((self._conn.get("SessionCookie") or {}).get("Value"), "Stash session cookie")
        self.url = f"{self._conn['Scheme']}://{self._conn['Host']}:{self._conn['Port']}"
        self.timeout = timeout
        self.deadline = deadline
        self._client: Any = None
        self._lock = threading.Lock()
        self._call_log = CallLog(_stashapi_logger)

    def __repr__(self) -> str:
        return f"StashConnection({self.url!r})"

    def client(self) -> Any:
        """Return the connected ``StashInterface``, connecting now if needed.

        Raises:
            StashUnavailable: Stash did not answer, or is not Stash.
            StashKeyRejected: Stash refused the API key or session (a ``ConfigurationError``).
        """
        with self._lock:
            if self._client is None:
                cls = _timed_interface_class(self.timeout, self.url, self.deadline, _credential(self._conn))
                client = cls.__new__(cls)
                log = _ConnectTimeLog(_stashapi_logger)
                try:
                    client.__init__({**self._conn, "Logger": log})
                except Exception as error:
                    log.release(logging.DEBUG)
                    _close_session(client)  # stashapi leaves its session open when connecting fails
                    if isinstance(error, StashKeyRejected):
                        raise
                    raise StashUnavailable(
                        f"cannot connect to Stash at {self.url}: {describe_failure(error, self.timeout)}"
                    ) from None
                client.log = self._call_log
                log.release(logging.ERROR)
                self._client = client
            return self._client

    def close(self) -> None:
        """Close the HTTP session; the next call connects afresh."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            _close_session(client)

    def find_scene(self, scene_id: int) -> Any:
        """``StashInterface.find_scene``, over the lazy connection."""
        return self._call(lambda client: client.find_scene(scene_id, fragment="id"))

    def call_GQL(self, query: str, variables: dict[str, Any] | None = None) -> Any:  # noqa: N802 (stashapi's name)
        """``StashInterface.call_GQL``, over the lazy connection."""
        return self._call(lambda client: client.call_GQL(query, variables or {}))

    def _call(self, action: Any) -> Any:
        client = self.client()
        answer: Any = None
        with self._call_log.holding() as stashapi_errors:
            try:
                answer = action(client)
            except StashKeyRejected:
                self.close()
                raise
            except (requests.ConnectionError, requests.Timeout) as error:
                self.close()
                raise StashUnavailable(
                    f"Stash at {self.url} stopped answering: {describe_failure(error, self.timeout)}"
                ) from None
            except Exception:
                if not stashapi_errors:
                    raise
        if stashapi_errors and not answer:  # stashapi logged Stash's error, then failed or answered nothing
            said = self._call_log.release(stashapi_errors, logging.DEBUG)
            raise StashUnavailable(f"Stash at {self.url} answered with an error: {said}") from None
        self._call_log.release(stashapi_errors, logging.ERROR)  # a partial answer: its errors, as before
        return answer
