"""``check_plex_health`` and the lazily built ``PlexConnection``."""

from __future__ import annotations

import pytest
import requests

from plexsync_recovery_plugin.plex.exceptions import PlexAuthError, PlexServerDown
from plexsync_recovery_plugin.plex.health import PlexConnection, check_plex_health


class FakeServer:
    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def query(self, key, timeout=None):
        self.asked.append((key, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_healthy_plex_reports_latency():
    server = FakeServer(["<MediaContainer/>"])
    healthy, latency = check_plex_health(server, timeout=2.5)
    assert healthy is True
    assert latency >= 0.0
    assert server.asked == [("/identity", 2.5)]


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), PlexAuthError("401"), ValueError("odd")])
def test_any_failure_is_unhealthy_and_never_raised(error):
    assert check_plex_health(FakeServer([error])) == (False, 0.0)


def test_missing_client_is_unhealthy():
    assert check_plex_health(None) == (False, 0.0)


def test_connection_is_built_lazily_and_rebuilt_after_failure():
    built = []
    servers = [FakeServer([requests.ConnectionError("refused")]), FakeServer(["ok", "ok"])]

    def factory(baseurl, token, timeout):
        built.append((baseurl, token, timeout))
        return servers[len(built) - 1]

    connection = PlexConnection("http://plex:32400/", "secret-token", timeout=3.0, factory=factory)
    assert built == []
    with pytest.raises(PlexServerDown):
        connection.query("/identity")
    assert connection.query("/identity") == "ok"
    assert connection.query("/identity") == "ok"
    assert built == [("http://plex:32400", "secret-token", 3.0)] * 2


def test_constructor_failure_is_translated_and_retried():
    attempts = []

    def factory(baseurl, token, timeout):
        attempts.append(1)
        if len(attempts) == 1:
            raise requests.ConnectionError("Connection refused")
        return FakeServer(["ok"])

    connection = PlexConnection("http://plex:32400", "t", factory=factory)
    assert check_plex_health(connection) == (False, 0.0)
    assert check_plex_health(connection)[0] is True


def test_repr_never_shows_the_token():
    assert "secret-token" not in repr(PlexConnection("http://plex:32400", "secret-token"))
