"""What a recovery does with the DLQ a real outage leaves, through ``RecoveryPlugin`` and real servers.

Each dataset is shaped as PlexSync's worker writes it: jobs dead-lettered with its error
types and messages, its retry copies acked in the queue, several entries for one scene.
The plugin runs over real SQLite files, a real ``SQLiteAckQueue``, plexapi against the
loopback Plex and stashapi against the loopback Stash.

- A poison entry (an id no SQLite can hold, a row that breaks its chunk's transaction)
  fails alone; the window's other entries are queued, and a rerun does the same.
- A job accepted from the DLQ, once re-queued, is read back by the plugin's own decoder:
  a second outage's entry for the same scene is "already queued".
- ``PlexTemporaryError`` entries that show Plex unreachable, timing out or answering 5xx
  are an outage's casualties and recovered by default; the rest is counted as left.
- An acked job covers an entry only if enqueued after the end of the failure's second.
- A scene's newest dead-lettered job is the one re-queued.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from plexapi.server import PlexServer
from stashapi.stashapp import StashInterface

from plexsync_recovery_plugin import RecoveryPlugin
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.engine import RecoveryResult
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.operations import open_queue
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.plexsync_outage import (
    ABORTED,
    LATER_END,
    LATER_START,
    POISON_SCENE,
    RATE_LIMITED,
    TIMEOUT,
    UNAVAILABLE,
    add_outage_dlq,
    add_same_second_copies,
    add_two_edits,
    big_job_pickle,
    worker_job,
)

STASH_LOG = logging.getLogger("test.stash")
#: Scenes the loopback Stash has, and one it finds though no SQLite could hold its id.
SCENES = range(1, 40)
@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PlexTestServer, StashTestServer]]:
    with PlexTestServer() as plex_server, StashTestServer(scenes=[*SCENES, POISON_SCENE]) as stash_server:
        yield plex_server, stash_server


@pytest.fixture
def clients(servers: tuple[PlexTestServer, StashTestServer]) -> Iterator[tuple[PlexServer, StashInterface]]:
    plex_server, stash_server = servers
    plex = PlexServer(plex_server.url, plex_server.token)
    stash = StashInterface({**stash_server.connection(), "Logger": STASH_LOG})
    yield plex, stash
    plex._session.close()
    stash.s.close()


@pytest.fixture
def recover(plexsync_dir: PlexSyncData, clients: tuple[PlexServer, StashInterface]) -> Iterator[Any]:
    """``recover(start, end, **plugin options)``: one real run of a fresh plugin; returns its result."""
    plex, stash = clients
    plexsync_dir.create_dlq()

    def run(start: float = WINDOW_START, end: float = WINDOW_END, **options: Any) -> RecoveryResult:
        queue = open_queue(plexsync_dir.data_dir)
        try:
            plugin = RecoveryPlugin(DeadLetterQueue(plexsync_dir.data_dir), queue, stash, plex, plexsync_dir.data_dir,
                                    **options)
            runs = plugin.recover(start, end)
        finally:
            queue.close()
        assert [run.error for run in runs] == [None] * len(runs)
        result = runs[-1].result
        assert result is not None
        return result

    return run


def queued_titles(data_dir: Path) -> dict[int, list[str]]:
    """Scene -> the titles of its pending jobs, read back as PlexSync's worker reads them."""
    jobs: dict[int, list[str]] = {}
    for job in drain(data_dir):
        jobs.setdefault(job["scene_id"], []).append(job["data"].get("title"))
    return jobs


# --- poison stays local ------------------------------------------------------------------------

def test_a_scene_id_sqlite_cannot_hold_fails_its_entry_alone_on_every_run(plexsync_dir, recover, caplog):
    for scene_id in (1, 2, 3):
        plexsync_dir.add_dead_letter(worker_job(scene_id), failed_at=WINDOW_START + scene_id)
    poison = pickle.dumps({**worker_job(1), "scene_id": POISON_SCENE}, protocol=0)  # decodes: a plain int
    poison_id = plexsync_dir.add_dead_letter({}, job_data=poison, scene_id=None, failed_at=WINDOW_START + 4)

    first = recover()
    assert (first.recovered, first.failed, first.deferred) == (3, 1, False)
    assert sorted(queued_titles(plexsync_dir.data_dir)) == [1, 2, 3]
    assert any(f"DLQ entry {poison_id}" in message and str(POISON_SCENE) in message for message in caplog.messages)

    again = recover()  # the rerun fails the same one entry, and nothing else
    assert (again.recovered, again.skipped_already_queued, again.failed) == (0, 3, 1)


def test_a_row_its_transaction_refuses_fails_alone_and_the_chunk_is_written(plexsync_dir, recover, data_dir):
    """One row of the chunk breaks the transaction (a constraint): the others are written one by one."""
    for scene_id in range(1, 7):
        plexsync_dir.add_dead_letter(worker_job(scene_id), failed_at=WINDOW_START + scene_id)
    queue = open_queue(data_dir)
    queue.close()  # PlexSync's queue file exists; give the ledger a constraint that refuses scene 4
    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    try:
        from plexsync_recovery_plugin.sync_queue import operations as ledger

        ledger.ensure_ledger(conn)
        conn.execute(f"CREATE TRIGGER refuse_four BEFORE INSERT ON {ledger.LEDGER_TABLE} WHEN NEW.scene_id = 4"
                     " BEGIN SELECT RAISE(ABORT, 'scene 4 refused'); END")
        conn.commit()
    finally:
        conn.close()

    result = recover()
    assert (result.recovered, result.failed, result.deferred) == (5, 1, False)
    assert sorted(queued_titles(data_dir)) == [1, 2, 3, 5, 6]


# --- read back what you write ------------------------------------------------------------------


def test_a_big_job_once_requeued_is_read_back_and_a_second_outage_finds_it_queued(plexsync_dir, recover, caplog):
    plexsync_dir.add_dead_letter({}, job_data=big_job_pickle(5), scene_id=5, failed_at=WINDOW_START + 10)
    first = recover()
    assert (first.recovered, first.failed) == (1, 0)

    # A second outage dead-letters the same scene while the big job still waits in the queue.
    plexsync_dir.add_dead_letter(worker_job(5), failed_at=LATER_START + 10)
    second = recover(LATER_START, LATER_END)
    assert (second.recovered, second.skipped_already_queued) == (0, 1)
    assert [job["scene_id"] for job in drain(plexsync_dir.data_dir)] == [5]  # one job, the big one
    assert not any("not a readable job" in message for message in caplog.messages)


# --- outage casualties by default --------------------------------------------------------------


def test_an_outages_temporary_errors_are_recovered_by_default(plexsync_dir, recover, caplog):
    add_outage_dlq(plexsync_dir)
    result = recover()
    assert (result.total_dlq_entries, result.recovered, result.failed) == (7, 7, 0)
    assert sorted(queued_titles(plexsync_dir.data_dir)) == [1, 2, 3, 4, 5, 6, 7]
    assert result.left_by_error_type == {"PlexTemporaryError": 1, "PlexNotFound": 1, "PlexPermanentError": 1}
    left = [message for message in caplog.messages if message.startswith("left ")]
    assert left == ["left 1 PlexNotFound, 1 PlexPermanentError, 1 PlexTemporaryError in this window;"
                    " --include-optional recovers the PlexTemporaryError and PlexNotFound entries"]


def test_outage_casualties_can_be_turned_off(plexsync_dir, recover):
    add_outage_dlq(plexsync_dir)
    result = recover(outage_casualties=False)
    assert (result.total_dlq_entries, result.recovered) == (0, 0)
    assert result.left_by_error_type == {"PlexTemporaryError": 8, "PlexNotFound": 1, "PlexPermanentError": 1}
    assert drain(plexsync_dir.data_dir) == []


def test_include_optional_recovers_every_temporary_and_not_found_entry(plexsync_dir, recover):
    add_outage_dlq(plexsync_dir)
    result = recover(include_optional=True)
    assert (result.total_dlq_entries, result.recovered) == (9, 9)
    assert result.left_by_error_type == {"PlexPermanentError": 1}


@pytest.mark.parametrize(("error_type", "message", "casualty"), [
    ("PlexServerDown", "Plex server is down", True),
    ("PlexTemporaryError", TIMEOUT, True),
    ("PlexTemporaryError", ABORTED, True),
    ("PlexTemporaryError", UNAVAILABLE, True),
    ("PlexTemporaryError", "Server error (500): 500 Server Error", True),
    ("PlexTemporaryError", RATE_LIMITED, False),  # Plex answered: it asks for less
    ("PlexTemporaryError", "Unknown Plex error: 'NoneType' object has no attribute 'title'", False),
    ("PlexTemporaryError", None, False),
    ("PlexNotFound", TIMEOUT, False),  # only PlexTemporaryError is read by its message
    ("PlexPermanentError", UNAVAILABLE, False),
])
def test_what_reads_as_an_outage_casualty(error_type: str, message: Any, casualty: bool) -> None:
    from plexsync_recovery_plugin.sync_queue.dlq_recovery import is_outage_casualty

    assert is_outage_casualty(error_type, message) is casualty


# --- the same second ---------------------------------------------------------------------------


def test_an_acked_copy_from_the_failures_own_second_does_not_cover_it(plexsync_dir, recover):
    add_same_second_copies(plexsync_dir)
    result = recover()
    assert (result.recovered, result.skipped_already_queued) == (5, 5)
    assert sorted(queued_titles(plexsync_dir.data_dir)) == [1, 2, 3, 4, 5]


# --- a scene's newest job ----------------------------------------------------------------------


def test_a_scenes_newest_dead_lettered_job_is_the_one_requeued(plexsync_dir, recover):
    add_two_edits(plexsync_dir)
    result = recover()
    assert (result.recovered, result.skipped_already_queued) == (2, 2)
    assert queued_titles(plexsync_dir.data_dir) == {3: ["newer edit"], 4: ["last of the second"]}
