"""The Plex error taxonomy shared with PlexSync, and the one place that maps client errors onto it.

Where PlexSync keeps its own ``plex/exceptions.py``, so a PlexSync developer finds it here.

PlexSync's dead-letter queue stores ``type(error).__name__``; recovery decides what is
safe to retry from those names, so every name here must stay stable.
"""

from __future__ import annotations

import re
import socket

import requests

__all__ = [
    "PlexError",
    "PlexServerDown",
    "PlexTemporaryError",
    "PlexNotFound",
    "PlexPermanentError",
    "PlexAuthError",
    "PlexPermissionError",
    "translate_plex_error",
]

_STATUS_IN_MESSAGE = re.compile(r"^\((\d{3})\)")
# How far down a chain of ``raise ... from ...`` a translation looks.
_MAX_CAUSE_DEPTH = 5


class PlexError(Exception):
    """Base class of every Plex failure this project reports."""


class PlexServerDown(PlexError):
    """Plex could not be reached at all: connection refused, DNS failure, host unreachable."""


class PlexTemporaryError(PlexError):
    """Plex answered, or may answer, later: a timeout, a 5xx, or 429 Too Many Requests."""


class PlexNotFound(PlexError):
    """Plex answered 404: the item is not (yet) in the library."""


class PlexPermanentError(PlexError):
    """Plex refused the request in a way that retrying will not fix."""


class PlexAuthError(PlexPermanentError):
    """Plex answered 401: the token is missing or wrong."""


class PlexPermissionError(PlexPermanentError):
    """Plex answered 403: the token may not do this."""


def _from_status(status: int, message: str) -> PlexError:
    if status == 401:
        return PlexAuthError(message)
    if status == 403:
        return PlexPermissionError(message)
    if status == 404:
        return PlexNotFound(message)
    if status == 429 or status >= 500:
        return PlexTemporaryError(message)
    return PlexPermanentError(message)


def _translate_cause(error: BaseException) -> PlexError | None:
    """Translate the explicit cause of an error this module does not know, if it knows the cause."""
    cause = error.__cause__
    for _ in range(_MAX_CAUSE_DEPTH):
        if cause is None:
            return None
        if isinstance(cause, (requests.RequestException, OSError, PlexError)) or _STATUS_IN_MESSAGE.match(str(cause)):
            return translate_plex_error(cause)
        cause = cause.__cause__
    return None


def translate_plex_error(error: BaseException) -> PlexError:
    """Map an exception raised by ``plexapi`` or ``requests`` onto the taxonomy.

    Args:
        error: What the Plex client raised.

    Returns:
        The matching ``PlexError``; the original is kept as ``__cause__``. An error that
        is already a ``PlexError`` is returned unchanged.
    """
    if isinstance(error, PlexError):
        return error
    message = str(error) or type(error).__name__
    translated: PlexError
    # Timeouts first: requests' ConnectTimeout is also a ConnectionError.
    if isinstance(error, (requests.Timeout, socket.timeout, TimeoutError)):
        translated = PlexTemporaryError(message)
    elif isinstance(error, (requests.ConnectionError, ConnectionError, socket.gaierror)):
        translated = PlexServerDown(message)
    elif isinstance(error, requests.HTTPError) and error.response is not None:
        translated = _from_status(error.response.status_code, message)
    elif (match := _STATUS_IN_MESSAGE.match(message)) is not None:
        # plexapi's Unauthorized / NotFound / BadRequest carry "(status) reason; url ..."
        translated = _from_status(int(match.group(1)), message)
    elif (from_cause := _translate_cause(error)) is not None:
        # A wrapper's own error raised ``from`` the client's (PlexSync's PlexClient does so).
        translated = type(from_cause)(message)
    elif isinstance(error, OSError):
        translated = PlexServerDown(message)
    else:
        translated = PlexTemporaryError(message)
    translated.__cause__ = error
    return translated
