"""A Stash that cannot answer is not a Stash whose scenes were deleted.

stashapi answers a GraphQL error (Stash's "database is locked") with ``{}``, so its
``find_scene`` raises ``KeyError``; a dead Stash raises connection errors. Only a real
``null`` means the scene is gone. Every other failure leaves the entry eligible, counts
``skipped_stash_error`` and keeps the window pending; a refused API key is a configuration
error that stops the run (the window stays pending for the run made once it is fixed). Checked with the StashTestServer and
the real ``stashapi`` client, through the batched path (``StashInterface``,
``StashConnection``) and the per-entry path (any object with ``find_scene``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pytest
from stashapi.stashapp import StashInterface

from plexsync_recovery_plugin import RecoveryPlugin, StashConnection, outage_ended
from plexsync_recovery_plugin.errors import STASH_API_KEY, ConfigurationError
from plexsync_recovery_plugin.stash.connection import StashKeyRejected
from plexsync_recovery_plugin.stash.lookup import SceneStatus, StashLookup
from plexsync_recovery_plugin.testing import StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.reliability.helpers import SwitchablePlex

STASH_LOG = logging.getLogger("plexsync_recovery_plugin.tests.stashapi")


class PerEntryStash:
    """Hides a real client behind a bare ``find_scene``, so recovery asks one scene at a time."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def find_scene(self, scene_id: int) -> Any:
        return self.client.find_scene(scene_id)


@pytest.fixture
def stash_server() -> Iterator[StashTestServer]:
    with StashTestServer(scenes=range(1, 6)) as server:
        yield server


@pytest.fixture
def interface(stash_server: StashTestServer) -> Iterator[StashInterface]:
    client = StashInterface({**stash_server.connection(), "Logger": STASH_LOG})
    yield client
    client.s.close()


@pytest.fixture
def connection(stash_server: StashTestServer) -> Iterator[StashConnection]:
    conn = StashConnection(stash_server.url, timeout=5.0)
    conn.client()
    yield conn
    conn.close()


#: name -> how to build the Stash object the plugin gets, from the fixtures.
CLIENTS: dict[str, Callable[[Any, Any], Any]] = {
    "StashInterface (batched)": lambda interface, connection: interface,
    "StashConnection (batched)": lambda interface, connection: connection,
    "StashInterface per entry": lambda interface, connection: PerEntryStash(interface),
    "StashConnection per entry": lambda interface, connection: PerEntryStash(connection),
}


def _recover(dlq, queue, stash, data_dir, completed) -> Any:
    with RecoveryPlugin(dlq, queue, stash, SwitchablePlex(), data_dir) as plugin:
        outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
        pending = plugin.pending_windows()
    return completed.calls[-1]["result"], pending


@pytest.mark.parametrize("mode", ["locked", "down"])
@pytest.mark.parametrize("client_name", list(CLIENTS))
def test_stash_failure_is_an_error_not_a_deleted_scene(
    dlq, queue, data_dir, add_entry, completed, failed, stash_server, interface, connection, mode, client_name
):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_START + 2)
    add_entry(3, failed_at=WINDOW_START + 3)
    stash = CLIENTS[client_name](interface, connection)
    stash_server.set_mode(mode)
    result, pending = _recover(dlq, queue, stash, data_dir, completed)
    assert failed.calls == []
    assert (result.skipped_stash_error, result.skipped_scene_missing, result.recovered) == (3, 0, 0)
    assert result.deferred is True
    assert pending == [(WINDOW_START, WINDOW_END)]
    assert drain(data_dir) == []

    stash_server.set_mode("up")  # Stash is back: the pending window is finished
    result, pending = _recover(dlq, queue, stash, data_dir, completed)
    assert (result.recovered, result.deferred, pending) == (3, False, [])
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]


@pytest.mark.parametrize("client_name", list(CLIENTS))
def test_only_a_real_null_counts_as_missing(
    dlq, queue, data_dir, add_entry, completed, stash_server, interface, connection, client_name
):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_START + 2)
    add_entry(9, failed_at=WINDOW_START + 3)  # never existed
    stash_server.delete_scene(2)
    result, pending = _recover(dlq, queue, CLIENTS[client_name](interface, connection), data_dir, completed)
    assert (result.recovered, result.skipped_scene_missing, result.skipped_stash_error) == (1, 2, 0)
    assert (result.deferred, pending) == (False, [])
    assert [job["scene_id"] for job in drain(data_dir)] == [1]


def test_dead_stash_costs_one_attempt_per_chunk_not_one_per_entry(
    dlq, queue, data_dir, add_entry, completed, stash_server
):
    for scene_id in range(1, 6):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    conn = StashConnection(stash_server.url, timeout=5.0)
    conn.client()
    stash_server.set_mode("down")
    asked: list[int] = []

    class Counting(PerEntryStash):
        def find_scene(self, scene_id: int) -> Any:
            asked.append(scene_id)
            return super().find_scene(scene_id)

    try:
        result, _ = _recover(dlq, queue, Counting(conn), data_dir, completed)
    finally:
        conn.close()
    assert result.skipped_stash_error == 5
    assert asked == [1]


def test_some_errors_leave_only_those_entries_for_later(
    dlq, queue, data_dir, add_entry, completed, stash_server, interface
):
    """Scenes 2 and 4 hit a GraphQL error ({} from stashapi); the others are recovered now."""
    for scene_id in range(1, 6):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)

    class Flaky(PerEntryStash):
        def find_scene(self, scene_id: int) -> Any:
            if scene_id in (2, 4):
                return self.client.call_GQL("query { noSuchField }")["findScene"]  # a GraphQL error: {} -> KeyError
            return super().find_scene(scene_id)

    result, pending = _recover(dlq, queue, Flaky(interface), data_dir, completed)
    assert (result.recovered, result.skipped_stash_error, result.deferred) == (3, 2, True)
    assert pending == [(WINDOW_START, WINDOW_END)]
    result, pending = _recover(dlq, queue, PerEntryStash(interface), data_dir, completed)
    assert (result.recovered, result.skipped_already_queued, pending) == (2, 3, [])
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3, 4, 5]


def _recover_failing(dlq, queue, stash, data_dir, failed) -> Any:
    with RecoveryPlugin(dlq, queue, stash, SwitchablePlex(), data_dir) as plugin:
        runs = plugin.recover(WINDOW_START, WINDOW_END)
        pending = plugin.pending_windows()
    assert [call["error"] for call in failed.calls] == [runs[-1].error]
    return runs, pending


@pytest.mark.parametrize("per_entry", [False, True], ids=["batched", "per entry"])
def test_a_rejected_key_stops_the_run_as_a_configuration_error_and_keeps_the_window(
    dlq, queue, data_dir, add_entry, failed, caplog, per_entry
):
    for scene_id in (1, 2, 3):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    with StashTestServer(api_key="the-right-key", scenes=[1, 2, 3]) as server:
        conn = StashConnection(server.url, "a-wrong-key", timeout=5.0)
        try:
            with caplog.at_level(logging.DEBUG):
                runs, pending = _recover_failing(dlq, queue, PerEntryStash(conn) if per_entry else conn, data_dir, failed)
        finally:
            conn.close()
    [run] = runs
    assert run.result is None and isinstance(run.error, ConfigurationError)
    assert run.error.credential == STASH_API_KEY
    assert str(run.error) == f"Stash at {conn.url} rejected the API key (HTTP 401 Unauthorized)"
    assert pending == [(WINDOW_START, WINDOW_END)]  # retried once the key is fixed
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(run.error) in errors[0].getMessage()  # stashapi's own lines do not repeat it
    assert drain(data_dir) == []


def test_a_rejected_key_is_asked_once_per_run_not_once_per_chunk(caplog):
    with StashTestServer(api_key="the-right-key", scenes=range(1, 8)) as server:
        conn = StashConnection(server.url, "a-wrong-key", timeout=5.0)
        lookup = StashLookup(conn, chunk_size=2)
        try:
            with pytest.raises(StashKeyRejected, match="rejected the API key"):
                conn.client()
            asked = server.request_count
            with pytest.raises(StashKeyRejected) as first:
                lookup.statuses([1, 2, 3, 4, 5])  # three chunks
            with pytest.raises(StashKeyRejected) as second:
                lookup.statuses([6, 7])  # the recovery's next chunk of entries
        finally:
            conn.close()
    assert first.value is second.value and server.request_count - asked <= 1
    assert not any("could not say" in record.getMessage() for record in caplog.records)
