"""StashTestServer, checked through the real ``stashapi`` client and raw HTTP."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from stashapi.stashapp import StashInterface

from plexsync_recovery_plugin.testing import StashTestServer

STASH_LOG = logging.getLogger("test.stash")

#: What the client raises on a GraphQL error and on HTTP 401, by distribution of the ``stashapi``
#: module: ``stashapi`` logs a GraphQL error and answers {} (so ``find_scene`` raises KeyError),
#: ``stashapp-tools`` (PlexSync's requirement) raises ``Exception("200 OK query failed. ...")``.
GRAPHQL_ERROR_RAISES = (KeyError, Exception)
UNAUTHORIZED_MESSAGE = r"Authentication error|401 Unauthorized query failed"

FIND_SCENE_IDS = "query($ids:[Int!]){ findScenes(scene_ids:$ids, filter:{per_page:-1}){ count scenes { id } } }"

SCENE_FIELDS = {
    "id",
    "title",
    "code",
    "details",
    "urls",
    "date",
    "rating100",
    "organized",
    "o_counter",
    "created_at",
    "updated_at",
}


@pytest.fixture
def http_sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[requests.Session]]:
    """Close every ``requests`` session stashapi opens, even when its constructor raises."""
    sessions: list[requests.Session] = []
    real_session = requests.session

    def tracked_session() -> requests.Session:
        sessions.append(real_session())
        return sessions[-1]

    monkeypatch.setattr(requests, "session", tracked_session)
    yield sessions
    for session in sessions:
        session.close()


@pytest.fixture
def connect(http_sessions: list[requests.Session]) -> Callable[..., StashInterface]:
    def make(server: StashTestServer, **overrides: Any) -> StashInterface:
        return StashInterface({**server.connection(), "Logger": STASH_LOG, **overrides})

    return make


@pytest.fixture
def stash() -> Iterator[StashTestServer]:
    with StashTestServer(scenes=range(1, 51)) as server:
        yield server


@pytest.fixture
def client(stash: StashTestServer, connect: Callable[..., StashInterface]) -> StashInterface:
    return connect(stash)


@pytest.fixture
def raw() -> Iterator[Callable[..., requests.Response]]:
    """POST a GraphQL request without stashapi, to see exactly what the server answers."""
    with requests.Session() as session:

        def post(server: StashTestServer, query: str, variables: dict[str, Any] | None = None) -> requests.Response:
            return session.post(server.url, json={"query": query, "variables": variables}, timeout=5)

        yield post


def _ids(data: dict[str, Any]) -> list[str]:
    return [scene["id"] for scene in data["findScenes"]["scenes"]]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_stashapi_connects_and_finds_a_scene(stash: StashTestServer, client: StashInterface) -> None:
    scene = client.find_scene(7)

    assert set(scene) == SCENE_FIELDS  # stashapi's ...Scene fragment came from introspection
    assert scene["id"] == "7"
    assert scene["title"] == "Scene 7"
    assert scene["urls"] == [] and scene["organized"] is False
    assert stash.operation_counts == {"version": 1, "configuration": 1, "__schema": 1, "findScene": 1}
    assert stash.request_count == 4


def test_find_scene_is_none_for_unknown_and_deleted_scenes(stash: StashTestServer, client: StashInterface) -> None:
    assert client.find_scene(999) is None

    assert stash.delete_scene(7) is True
    assert stash.delete_scene(7) is False

    assert client.find_scene(7) is None
    assert 7 not in stash.scene_ids()


def test_added_scene_fields_are_served(stash: StashTestServer, client: StashInterface) -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    stash.add_scene(100, title="Hello", urls=["https://example.invalid/a"], organized=True, rating100=80, created_at=created)

    scene = client.find_scene(100)

    assert scene["title"] == "Hello"
    assert scene["urls"] == ["https://example.invalid/a"]
    assert scene["organized"] is True and scene["rating100"] == 80
    assert scene["created_at"] == "2024-05-06T07:08:09+00:00"
    with pytest.raises(TypeError):
        stash.add_scene(101, path="/not/a/scene/field")
    with pytest.raises(ValueError):
        stash.add_scene(0)


def test_find_scenes_by_scene_ids_returns_existing_scenes_sorted(
    stash: StashTestServer, client: StashInterface
) -> None:
    stash.strict_ids = False  # the lenient mode
    stash.delete_scene(3)

    data = client.call_GQL(FIND_SCENE_IDS, {"ids": [5, 3, 1, 999, 2]})

    assert data["findScenes"]["count"] == 3
    assert _ids(data) == ["1", "2", "5"]
    assert stash.operation_counts["findScenes"] == 1


def test_find_scenes_pages_like_stash(stash: StashTestServer, client: StashInterface) -> None:
    stash.strict_ids = False  # the lenient mode pages scene_ids too
    paged = client.call_GQL(
        "query($ids:[Int!]){ findScenes(scene_ids:$ids, filter:{page:2, per_page:10}){ count scenes { id } } }",
        {"ids": list(range(1, 51))},
    )
    default_page = client.call_GQL("{ findScenes(filter: {direction: DESC}) { count scenes { id } } }")
    empty_list = client.call_GQL(FIND_SCENE_IDS.replace("per_page:-1", "per_page:3"), {"ids": []})

    assert paged["findScenes"]["count"] == 50
    assert _ids(paged) == [str(i) for i in range(11, 21)]
    assert default_page["findScenes"]["count"] == 50
    assert _ids(default_page) == [str(i) for i in range(50, 25, -1)]  # 25 per page by default
    # As in Stash, an empty id list is no restriction at all.
    assert empty_list["findScenes"]["count"] == 50
    assert _ids(empty_list) == ["1", "2", "3"]


def test_find_scenes_by_id_range(stash: StashTestServer, client: StashInterface) -> None:
    stash.delete_scene(15)
    query = (
        "query($low:Int!, $high:Int!){ findScenes(filter:{per_page:-1},"
        " scene_filter:{id:{value:$low, value2:$high, modifier:BETWEEN}}){ count scenes { id } } }"
    )

    inside = client.call_GQL(query, {"low": 10, "high": 20})
    beyond = client.call_GQL(query, {"low": 45, "high": 10**6})

    assert _ids(inside) == [str(i) for i in range(10, 21) if i != 15]
    assert inside["findScenes"]["count"] == 10
    assert _ids(beyond) == [str(i) for i in range(45, 51)]


def test_find_scenes_ids_argument(stash: StashTestServer, raw: Callable[..., requests.Response]) -> None:
    stash.strict_ids = False  # the lenient mode
    query = "query($ids:[ID!]){ findScenes(ids:$ids, filter:{per_page:-1}){ count scenes { id } } }"

    found = raw(stash, query, {"ids": ["4", "2", "77"]}).json()
    duplicated = raw(stash, query, {"ids": ["4", "4"]}).json()

    assert _ids(found["data"]) == ["2", "4"]
    assert duplicated["data"] is None
    assert duplicated["errors"][0]["message"] == "validating ids: duplicate id found: 4"


def test_strict_ids_fail_on_a_missing_scene_like_real_stash(raw: Callable[..., requests.Response]) -> None:
    with StashTestServer(scenes=[1, 2], strict_ids=True) as stash:
        missing = raw(stash, FIND_SCENE_IDS, {"ids": [1, 3]})
        in_order = raw(stash, FIND_SCENE_IDS.replace("per_page:-1", "per_page:1"), {"ids": [2, 1]}).json()
        repeated = raw(stash, FIND_SCENE_IDS, {"ids": [1, 1]}).json()

    assert missing.status_code == 200
    assert missing.json()["data"] is None
    assert missing.json()["errors"][0]["message"] == "scene with id 3 not found"
    assert missing.json()["errors"][0]["path"] == ["findScenes"]
    assert _ids(in_order["data"]) == ["2", "1"]  # input order, paging ignored
    assert repeated["errors"][0]["message"] == "scene with id 1 not found"  # Stash's FindMany quirk


def test_locked_database(stash: StashTestServer, client: StashInterface, raw: Callable[..., requests.Response]) -> None:
    stash.set_mode("locked")

    with pytest.raises(GRAPHQL_ERROR_RAISES) as raised:
        client.find_scene(1)
    assert isinstance(raised.value, KeyError) or "query failed" in str(raised.value)
    scenes = raw(stash, FIND_SCENE_IDS, {"ids": [1]})
    assert scenes.status_code == 200
    assert scenes.json()["data"] is None
    assert scenes.json()["errors"][0]["message"] == "database is locked"
    assert raw(stash, "{ findScene(id: 1) { id } }").json()["data"] == {"findScene": None}
    assert client.stash_version().minor == 27  # version does not touch the database

    stash.set_mode("up")

    assert client.find_scene(1)["id"] == "1"


def test_down_refuses_connections_and_up_listens_on_the_same_port(
    stash: StashTestServer, client: StashInterface
) -> None:
    port = stash.port

    stash.set_mode("down")

    assert not _accepts_connections(port)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.find_scene(1)

    stash.set_mode("up")

    assert stash.port == port
    assert client.find_scene(1)["id"] == "1"


def test_initially_down(connect: Callable[..., StashInterface]) -> None:
    with StashTestServer(scenes=[1], initial_mode="down") as stash:
        assert not _accepts_connections(stash.port)
        with pytest.raises(requests.exceptions.ConnectionError):
            connect(stash)

        stash.set_mode("up")

        assert connect(stash).find_scene(1)["id"] == "1"


def test_api_key_is_required_when_configured(
    connect: Callable[..., StashInterface], raw: Callable[..., requests.Response]
) -> None:
    with StashTestServer(api_key="sekret", scenes=[1]) as stash:
        assert stash.connection()["ApiKey"] == "sekret"
        client = connect(stash)
        assert client.call_GQL("{ configuration { general { apiKey } } }") == {
            "configuration": {"general": {"apiKey": "sekret"}}
        }
        assert raw(stash, "{ version { version } }").status_code == 401
        with pytest.raises(Exception, match=UNAUTHORIZED_MESSAGE):
            connect(stash, ApiKey="wrong")


def test_connection_dict_without_api_key(stash: StashTestServer, client: StashInterface) -> None:
    assert stash.connection() == {"scheme": "http", "host": "127.0.0.1", "port": stash.port}
    assert stash.url == f"http://127.0.0.1:{stash.port}/graphql"
    assert client.call_GQL("{ configuration { general { apiKey } } }")["configuration"]["general"]["apiKey"] == ""


def test_schema_uses_stash_names(stash: StashTestServer, raw: Callable[..., requests.Response]) -> None:
    query = """{
      scene: __type(name: "Scene") { fields { name } }
      query: __type(name: "Query") { fields { name args(includeDeprecated: true) { name isDeprecated } } }
      filter: __type(name: "FindFilterType") { inputFields { name } }
    }"""

    data = raw(stash, query).json()["data"]

    assert {field["name"] for field in data["scene"]["fields"]} == SCENE_FIELDS
    find_scenes = next(field for field in data["query"]["fields"] if field["name"] == "findScenes")
    assert {arg["name"]: arg["isDeprecated"] for arg in find_scenes["args"]} == {
        "scene_filter": False,
        "scene_ids": True,
        "ids": False,
        "filter": False,
    }
    assert {field["name"] for field in data["filter"]["inputFields"]} == {"q", "page", "per_page", "sort", "direction"}


def test_http_envelope(stash: StashTestServer, raw: Callable[..., requests.Response]) -> None:
    with requests.Session() as session:
        wrong_method = session.get(stash.url, timeout=5)
        wrong_path = session.post(stash.url.replace("/graphql", "/other"), json={"query": "{ version { hash } }"}, timeout=5)
        not_json = session.post(stash.url, data=b"{oops", timeout=5)
    syntax_error = raw(stash, "{ findScene(id: ")
    good = raw(stash, "{ version { version } }")

    assert wrong_method.status_code == 405
    assert wrong_path.status_code == 404
    assert not_json.status_code == 400 and not_json.json()["errors"]
    assert syntax_error.status_code == 422 and "Syntax Error" in syntax_error.json()["errors"][0]["message"]
    assert good.status_code == 200
    assert good.headers["Content-Type"] == "application/json"
    assert int(good.headers["Content-Length"]) == len(good.content)
    assert good.json() == {"data": {"version": {"version": "v0.27.2"}}}


def test_operation_counts_are_a_copy_and_can_be_reset(stash: StashTestServer, client: StashInterface) -> None:
    counts = stash.operation_counts
    counts["findScene"] += 100

    assert stash.operation_counts["findScene"] == 0

    client.call_GQL("{ a: findScene(id: 1) { id } b: findScene(id: 2) { id } }")
    assert stash.operation_counts["findScene"] == 2

    stash.reset_counts()
    assert stash.operation_counts == {}


def test_scene_store_is_thread_safe_under_concurrent_requests(stash: StashTestServer) -> None:
    errors: list[BaseException] = []

    def churn() -> None:
        for scene_id in range(1000, 1500):
            stash.add_scene(scene_id)
            stash.delete_scene(scene_id)

    def query() -> None:
        with requests.Session() as session:
            for _ in range(20):
                response = session.post(stash.url, json={"query": "{ findScenes(filter:{per_page:-1}) { count } }"}, timeout=5)
                if response.status_code != 200 or "errors" in response.json():
                    errors.append(AssertionError(response.text))

    workers = [threading.Thread(target=churn)] + [threading.Thread(target=query) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert stash.scene_ids() == set(range(1, 51))


def test_stop_leaves_no_thread_and_no_listening_socket(connect: Callable[..., StashInterface]) -> None:
    threads_before = set(threading.enumerate())
    stash = StashTestServer(scenes=[1]).start()
    port = stash.port
    connect(stash).find_scene(1)  # leaves a keep-alive connection open

    stash.stop()

    assert set(threading.enumerate()) == threads_before
    assert not _accepts_connections(port)

