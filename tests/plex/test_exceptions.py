"""Client errors map onto PlexSync's taxonomy, which decides what recovery may retry."""

from __future__ import annotations

import socket

import pytest
import requests
from plexapi.exceptions import BadRequest, NotFound, Unauthorized

from plexsync_recovery_plugin.plex.exceptions import (
    PlexAuthError,
    PlexError,
    PlexNotFound,
    PlexPermanentError,
    PlexPermissionError,
    PlexServerDown,
    PlexTemporaryError,
    translate_plex_error,
)
from plexsync_recovery_plugin.sync_queue.dlq_recovery import (
    OPTIONAL_RETRY_ERROR_TYPES,
    PERMANENT_ERROR_TYPES,
    SAFE_RETRY_ERROR_TYPES,
)


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Unauthorized("(401) unauthorized; http://plex/identity"), PlexAuthError),
        (BadRequest("(403) forbidden; http://plex/identity"), PlexPermissionError),
        (NotFound("(404) not_found; http://plex/library/metadata/9"), PlexNotFound),
        (BadRequest("(503) service_unavailable; http://plex/identity"), PlexTemporaryError),
        (BadRequest("(429) too_many_requests; http://plex/"), PlexTemporaryError),
        (BadRequest("(400) bad_request; http://plex/"), PlexPermanentError),
        (requests.ConnectionError("Connection refused"), PlexServerDown),
        (socket.gaierror("Name or service not known"), PlexServerDown),
        (ConnectionRefusedError(111, "Connection refused"), PlexServerDown),
        (OSError(113, "No route to host"), PlexServerDown),
        (requests.ConnectTimeout("connect timed out"), PlexTemporaryError),
        (requests.ReadTimeout("read timed out"), PlexTemporaryError),
        (TimeoutError(), PlexTemporaryError),
        (http_error(401), PlexAuthError),
        (http_error(403), PlexPermissionError),
        (http_error(502), PlexTemporaryError),
    ],
)
def test_translation(error, expected):
    translated = translate_plex_error(error)
    assert type(translated) is expected
    assert translated.__cause__ is error


def test_plex_errors_pass_through_unchanged():
    error = PlexServerDown("already ours")
    assert translate_plex_error(error) is error


def test_auth_and_permission_errors_are_permanent():
    assert issubclass(PlexAuthError, PlexPermanentError)
    assert issubclass(PlexPermissionError, PlexPermanentError)


def test_every_classified_name_is_an_exception_class():
    from plexsync_recovery_plugin.plex import exceptions

    for name in SAFE_RETRY_ERROR_TYPES + OPTIONAL_RETRY_ERROR_TYPES + PERMANENT_ERROR_TYPES:
        assert issubclass(getattr(exceptions, name), PlexError)
