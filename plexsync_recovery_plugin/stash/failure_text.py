"""Stash failures in one plain line: what went wrong, in words, without the HTTP library's internals.

``requests`` describes a refused connection as ``HTTPConnectionPool(host=..., port=...): Max
retries exceeded with url: /graphql (Caused by NewConnectionError(...))``, and ``stashapi``
logs a GraphQL error as ``DATABASE_LOCKED:['r0'] database is locked`` and then fails with an
``AttributeError`` of its own. ``describe_failure`` says "connection refused", and
``CallLog`` holds ``stashapi``'s error lines during a call so that the call's one error can
say "database is locked" (its lines are still logged, at DEBUG).
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import requests

from ..errors import answer_excerpt
from ..http_deadline import DeadlineExceeded

__all__ = ["CallLog", "describe_failure", "graphql_error_text"]

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
