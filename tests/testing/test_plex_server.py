"""PlexTestServer, checked through the real ``plexapi`` client and raw HTTP."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
import requests
from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer

from plexsync_recovery_plugin.testing import PlexTestServer


@pytest.fixture
def plex() -> Iterator[PlexTestServer]:
    with PlexTestServer() as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http_session:
        yield http_session


def _connect(plex: PlexTestServer, session: requests.Session, *, timeout: float = 5.0) -> PlexServer:
    return PlexServer(plex.url, plex.token, session=session, timeout=timeout)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_plexapi_connects_and_reads_the_server_description(session: requests.Session) -> None:
    with PlexTestServer(machine_identifier="abc123", friendly_name="Den & Co", version="1.2.3.4-x") as plex:
        server = _connect(plex, session)

        assert server.machineIdentifier == "abc123"
        assert server.friendlyName == "Den & Co"
        assert server.version == "1.2.3.4-x"
        assert server.myPlex is False
        assert plex.request_count == 1


def test_default_machine_identifier_is_random_hex(session: requests.Session) -> None:
    with PlexTestServer() as first, PlexTestServer() as second:
        identifier = _connect(first, session).machineIdentifier

        assert len(identifier) == 40 and int(identifier, 16) >= 0
        assert identifier != second.machine_identifier


def test_identity_answers_xml_with_exact_length(plex: PlexTestServer, session: requests.Session) -> None:
    response = session.get(f"{plex.url}/identity", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert int(response.headers["Content-Length"]) == len(response.content)
    root = ElementTree.fromstring(response.content)
    assert root.tag == "MediaContainer"
    assert root.attrib == {
        "size": "0",
        "claimed": "0",
        "machineIdentifier": plex.machine_identifier,
        "version": plex.version,
    }


def test_wrong_token_is_unauthorized(plex: PlexTestServer, session: requests.Session) -> None:
    with pytest.raises(Unauthorized):
        PlexServer(plex.url, "not-the-token", session=session, timeout=5)


def test_token_is_read_from_header_or_query_parameter(plex: PlexTestServer, session: requests.Session) -> None:
    assert session.get(f"{plex.url}/", timeout=5).status_code == 401
    assert session.get(f"{plex.url}/", params={"X-Plex-Token": "nope"}, timeout=5).status_code == 401
    assert session.get(f"{plex.url}/", params={"X-Plex-Token": plex.token}, timeout=5).status_code == 200
    assert session.get(f"{plex.url}/", headers={"X-Plex-Token": plex.token}, timeout=5).status_code == 200


def test_unknown_path_is_not_found(plex: PlexTestServer, session: requests.Session) -> None:
    server = _connect(plex, session)

    with pytest.raises(NotFound):
        server.query("/library/sections/99")


def test_down_refuses_connections_and_up_listens_on_the_same_port(
    plex: PlexTestServer, session: requests.Session
) -> None:
    server = _connect(plex, session)
    port = plex.port

    plex.set_mode("down")

    assert plex.mode == "down"
    assert not _accepts_connections(port)
    with pytest.raises(requests.exceptions.ConnectionError):
        server.query("/identity")

    plex.set_mode("up")

    assert plex.port == port
    assert server.query("/identity").attrib["machineIdentifier"] == plex.machine_identifier


def test_down_closes_open_keep_alive_connections(plex: PlexTestServer) -> None:
    connection = http.client.HTTPConnection(plex.host, plex.port, timeout=5)
    try:
        connection.request("GET", "/identity")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("Connection") != "close"

        plex.set_mode("down")

        assert connection.sock is not None
        try:
            leftover = connection.sock.recv(1)
        except ConnectionResetError:
            leftover = b""
        assert leftover == b""  # the server closed the idle connection
    finally:
        connection.close()


def test_initially_down_reserves_the_port_without_listening(session: requests.Session) -> None:
    with PlexTestServer(initial_mode="down") as plex:
        port = plex.port

        assert plex.mode == "down"
        assert not _accepts_connections(port)

        plex.set_mode("up")

        assert plex.port == port
        assert _connect(plex, session).machineIdentifier == plex.machine_identifier


def test_starting_answers_503_on_identity_and_root(plex: PlexTestServer, session: requests.Session) -> None:
    server = _connect(plex, session)

    plex.set_mode("starting")

    with pytest.raises(BadRequest, match=r"\(503\)"):
        server.query("/identity")
    with pytest.raises(BadRequest, match=r"\(503\)"):
        _connect(plex, session)

    plex.set_mode("up")

    assert server.query("/identity") is not None


def test_slow_answers_after_the_delay(plex: PlexTestServer, session: requests.Session) -> None:
    plex.set_mode("slow", delay=1.0)

    with pytest.raises(requests.exceptions.Timeout):
        _connect(plex, session, timeout=0.2)

    plex.set_mode("slow", delay=0.2)
    started = time.perf_counter()
    server = _connect(plex, session, timeout=5)

    assert time.perf_counter() - started >= 0.2
    assert server.machineIdentifier == plex.machine_identifier
    assert plex.delay == 0.2


def test_stop_leaves_no_thread_and_no_listening_socket(session: requests.Session) -> None:
    threads_before = set(threading.enumerate())
    plex = PlexTestServer().start()
    port = plex.port
    _connect(plex, session)  # leaves a keep-alive connection open
    plex.set_mode("slow", delay=30)
    blocked = threading.Thread(target=_get_ignoring_errors, args=(f"{plex.url}/identity",))
    blocked.start()  # a request the server sits on
    time.sleep(0.2)

    started = time.perf_counter()
    plex.stop()
    plex.stop()  # idempotent
    blocked.join(5)

    assert time.perf_counter() - started < 5  # the slow handler was woken up, not waited for
    assert set(threading.enumerate()) == threads_before
    assert not _accepts_connections(port)


def _get_ignoring_errors(url: str) -> None:
    with requests.Session() as own_session:
        try:
            own_session.get(url, timeout=10)
        except requests.RequestException:
            pass


def test_request_count_is_exact_under_concurrency(plex: PlexTestServer) -> None:
    def hammer() -> None:
        with requests.Session() as own_session:
            for _ in range(25):
                own_session.get(f"{plex.url}/identity", timeout=5).raise_for_status()

    workers = [threading.Thread(target=hammer) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert plex.request_count == 200


def test_properties_and_argument_checks() -> None:
    plex = PlexTestServer()
    with pytest.raises(RuntimeError):
        plex.port  # noqa: B018 - not started yet
    with pytest.raises(ValueError):
        PlexTestServer(initial_mode="sideways")
    with plex:
        assert plex.url == f"http://127.0.0.1:{plex.port}"
        assert plex.token == "plex-test-token"
        assert plex.mode == "up"
        with pytest.raises(ValueError):
            plex.set_mode("broken")
        with pytest.raises(ValueError):
            plex.set_mode("slow", delay=-1)
        assert plex.mode == "up"
        with pytest.raises(RuntimeError):
            plex.start()
