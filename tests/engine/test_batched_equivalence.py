"""Batched and per-entry recovery give the same answer, through the real stashapi client.

Each random dataset is written once and copied, so both paths start from byte-identical
data directories; the batched path runs against a ``StashTestServer`` that behaves as real
Stash does for ``findScenes`` (its default), the per-entry path asks the same server
through the same ``StashInterface`` one scene at a time. Results (minus ``run_id`` and
``plex_latency_ms``), every entry's outcome, the queue and the redrive ledger must match.
Budget: about 5 s for the whole module on 2 cores (the per-entry path is ~3 ms a scene).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import random
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import pytest
from plexapi.server import PlexServer
from stashapi.stashapp import StashInterface

from plexsync_recovery_plugin import engine
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData, plexsync_timestamp
from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.stash import lookup
from plexsync_recovery_plugin.stash.lookup import SceneStatus, StashLookup
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqWindow
from plexsync_recovery_plugin.sync_queue.dlq_recovery import recover_outage_jobs
from plexsync_recovery_plugin.sync_queue.operations import (
    DONE,
    LedgerRecord,
    LockBudget,
    QueueFile,
    enqueue,
    make_job,
    open_queue,
)
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START, drain

STASH_LOG = logging.getLogger("test.stash")
TYPES = ["PlexServerDown"]
#: Scenes Stash has: every id up to this, except the deleted ones below.
LIBRARY = 3000
#: Deleted from Stash: every seventh scene, so most ranges the batched lookup asks for have holes.
DELETED = {scene_id for scene_id in range(1, LIBRARY + 1) if scene_id % 7 == 3}
#: A valid but absurd scene id, beyond GraphQL's 32-bit Int (asked one by one).
HUGE_SCENE = 2**40


class _Unsafe:
    def __reduce__(self) -> Any:
        return (os.system, ("echo never",))


@pytest.fixture(scope="module")
def stash_server() -> Iterator[StashTestServer]:
    scenes = (scene_id for scene_id in range(1, LIBRARY + 1) if scene_id not in DELETED)
    with StashTestServer(scenes=scenes) as server:
        yield server


@pytest.fixture(scope="module")
def plex_server() -> Iterator[PlexTestServer]:
    with PlexTestServer() as server:
        yield server


@pytest.fixture
def stash(stash_server: StashTestServer) -> Iterator[StashInterface]:
    client = StashInterface({**stash_server.connection(), "Logger": STASH_LOG})
    yield client
    client.s.close()


@pytest.fixture
def plex(plex_server: PlexTestServer) -> Iterator[PlexServer]:
    server = PlexServer(plex_server.url, plex_server.token)
    yield server
    server._session.close()


def _corrupt_blob(rng: random.Random, scene_id: int) -> tuple[int | None, bytes | None]:
    """A ``(scene_id column, job_data)`` pair that cannot be recovered, of a random kind."""
    kind = rng.randrange(6)
    if kind == 0:
        return scene_id, b"not a pickle"
    if kind == 1:
        return scene_id, pickle.dumps(["a", "list"])
    if kind == 2:
        return scene_id, pickle.dumps(_Unsafe())
    if kind == 3:
        return scene_id, pickle.dumps({"scene_id": scene_id})  # no update_type
    if kind == 4:
        return scene_id, pickle.dumps(make_job(scene_id + 1, "metadata", {}))  # column and job disagree
    return scene_id, None


def build_dataset(data_dir: Path, seed: int, entries: int, *, null_columns: bool = True) -> None:
    """A random DLQ, queue and ledger: queued, redriven, deleted, corrupt, duplicate, out-of-window entries."""
    rng = random.Random(seed)
    plexsync = PlexSyncData(data_dir)
    queue = open_queue(data_dir)
    pool = rng.sample(range(1, LIBRARY + 1), k=entries // 2)  # sparse ids: gaps wider than one range
    rows: list[tuple[Any, ...]] = []
    scenes: list[int] = []  # each row's scene, as its job names it
    for _ in range(entries):
        scene_id = rng.choice(pool)  # about half the scenes get two or more entries
        failed_at = WINDOW_START + rng.randrange(0, int(WINDOW_END - WINDOW_START) + 1, rng.choice((1, 60, 600)))
        roll = rng.random()
        if roll < 0.08:
            failed_at = rng.choice((WINDOW_START - 1 - rng.randrange(5000), WINDOW_END + 1 + rng.randrange(5000)))
        error_type = rng.choice(["PlexAuthError", "PlexNotFound"]) if 0.08 <= roll < 0.13 else "PlexServerDown"
        column: int | None = scene_id
        blob: bytes | None = pickle.dumps(make_job(scene_id, rng.choice(["metadata", "image"]), {"n": rng.random()}))
        if 0.13 <= roll < 0.2:
            column, blob = _corrupt_blob(rng, scene_id)
        elif 0.2 <= roll < 0.25 and null_columns:
            column = None  # old rows: the job alone names the scene
        rows.append((column, blob, error_type, failed_at))
        scenes.append(scene_id)
    if seed % 2:
        rows.append((HUGE_SCENE, pickle.dumps(make_job(HUGE_SCENE, "metadata", {})), "PlexServerDown", WINDOW_START))
    stored = [(None, column, blob, error_type, "boom", "trace", 3, plexsync_timestamp(failed_at))
              for column, blob, error_type, failed_at in rows]
    plexsync.insert_dead_letter_rows(stored)
    identities = [(index + 1, row[-1], scene) for index, (row, scene) in enumerate(zip(stored, scenes))]  # ids from 1
    for scene_id in rng.sample(pool, k=len(pool) // 10):
        enqueue(queue, scene_id, "metadata", {"already": True})
    queue_file = QueueFile(queue.path)
    for dlq_id, failed_at, scene_id in rng.sample(identities, k=len(identities) // 10):
        queue_file.record(LedgerRecord(dlq_id, failed_at, scene_id, None, None, "earlier", 1.0, DONE, None))
    queue.close()


def run_path(data_dir: Path, stash: Any, plex: Any, *, batched: bool, page_size: int, order: str = "time") -> dict[str, Any]:
    """Recover the window of ``data_dir`` one way; return everything that must not depend on the way."""
    dlq = DeadLetterQueue(data_dir)
    queue = open_queue(data_dir)
    outcomes: list[tuple[int, str, bool]] = []  # (entry, outcome, settled by the ledger)
    try:
        window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=page_size, order=order)
        collaborators = default_collaborators(queue.path, queue, stash) if batched else None  # None: the seed per-entry path
        result = recover_outage_jobs(
            window, queue, stash, plex, data_dir, collaborators=collaborators,
            observer=lambda seen: outcomes.append((seen.dlq_id, seen.outcome, "earlier recovery" in seen.detail)),
        )
    finally:
        queue.close()
    summary = asdict(result)
    del summary["run_id"], summary["plex_latency_ms"]
    conn = sqlite3.connect(Path(queue.path) / "data.db")
    try:  # the rows as persist-queue sees them: put()'s status and column types, whoever wrote them
        rows = conn.execute(
            "SELECT status, typeof(timestamp), typeof(data) FROM ack_queue_default ORDER BY _id"
        ).fetchall()
    finally:
        conn.close()
    jobs = [
        {key: value for key, value in job.items() if key not in ("job_id", "enqueued_at")} for job in drain(data_dir)
    ]
    ledger = sorted((record["dlq_id"], record["scene_id"]) for record in QueueFile(queue.path).all_ledger_records())
    # Each entry's outcome, whatever the order the observer heard them in: the batched path
    # screens chunks ahead while Stash answers, so it may hear later entries first.
    return {"result": summary, "outcomes": sorted(outcomes), "rows": rows, "jobs": jobs, "ledger": ledger}


def both_paths(
    tmp_path: Path, seed: int, entries: int, stash: Any, plex: Any, stash_server: StashTestServer, page_size: int = 1000,
    order: str = "time",
    null_columns: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build one dataset, copy it, run each path on its copy; note which Stash fields each path used."""
    template = tmp_path / "template"
    template.mkdir()
    build_dataset(template, seed, entries, null_columns=null_columns)
    shutil.copytree(template, tmp_path / "batched")
    shutil.copytree(template, tmp_path / "per-entry")
    stash_server.reset_counts()
    batched = run_path(tmp_path / "batched", stash, plex, batched=True, page_size=page_size, order=order)
    batched["stash_fields"] = stash_server.operation_counts
    stash_server.reset_counts()
    per_entry = run_path(tmp_path / "per-entry", stash, plex, batched=False, page_size=page_size, order=order)
    per_entry["stash_fields"] = stash_server.operation_counts
    return batched, per_entry


def same_answer(batched: dict[str, Any], per_entry: dict[str, Any]) -> bool:
    """Everything but the Stash fields used is equal."""
    return {**batched, "stash_fields": None} == {**per_entry, "stash_fields": None}


@pytest.mark.parametrize(
    ("seed", "entries", "chunk", "page_size"), [(1, 300, 1000, 1000), (2, 250, 40, 33), (3, 200, 7, 50)]
)
def test_batched_and_per_entry_paths_agree(
    tmp_path: Path, stash: StashInterface, plex: PlexServer, stash_server: StashTestServer, mocker: Any,
    seed: int, entries: int, chunk: int, page_size: int,
) -> None:
    mocker.patch.object(engine, "RECOVERY_CHUNK", chunk)  # small chunks: duplicates span chunk boundaries
    batched, per_entry = both_paths(tmp_path, seed, entries, stash, plex, stash_server, page_size)

    assert same_answer(batched, per_entry)
    result = batched["result"]
    # The dataset exercised every gate, so agreement is not agreement on nothing.
    assert result["recovered"] > 20
    assert result["skipped_already_queued"] > 20
    assert result["skipped_scene_missing"] > 5
    assert result["failed"] >= 3
    assert sum(1 for *_, by_ledger in batched["outcomes"] if by_ledger) >= 5  # redriven by the "earlier" run
    assert result["skipped_stash_error"] == 0 and not result["deferred"]
    assert [job["scene_id"] for job in batched["jobs"]][-result["recovered"]:] == result["recovered_scene_ids"]
    assert set(batched["rows"]) == {(0, "real", "blob")}
    # The batched path asked by id range (plus one findScene for the id GraphQL's Int cannot carry);
    # the per-entry path asked scene by scene.
    assert batched["stash_fields"]["findScenes"] >= 1
    assert batched["stash_fields"]["findScene"] == seed % 2
    assert per_entry["stash_fields"]["findScenes"] == 0
    assert per_entry["stash_fields"]["findScene"] >= result["recovered"]


@pytest.mark.parametrize("mode", ["locked", "down"])
def test_paths_agree_when_stash_cannot_answer(
    tmp_path: Path, stash: StashInterface, plex: PlexServer, stash_server: StashTestServer, mode: str
) -> None:
    stash_server.set_mode(mode)
    try:
        batched, per_entry = both_paths(tmp_path, 5, 60, stash, plex, stash_server)
    finally:
        stash_server.set_mode("up")
    assert same_answer(batched, per_entry)
    assert batched["result"]["recovered"] == 0
    assert batched["result"]["skipped_stash_error"] > 10
    assert batched["result"]["deferred"] is True


def test_lookups_agree_scene_by_scene_across_request_boundaries(
    stash: StashInterface, stash_server: StashTestServer, mocker: Any
) -> None:
    mocker.patch.object(lookup, "MAX_RANGES_PER_REQUEST", 3)
    rng = random.Random(11)
    asked = rng.sample(range(1, LIBRARY + 200), k=400) + [HUGE_SCENE]  # includes ids past the library's end
    stash_server.reset_counts()
    requests_before = stash_server.request_count
    batched = StashLookup(stash, by_range=True, chunk_size=37, gap=5).statuses(asked)
    batched_requests = stash_server.request_count - requests_before
    per_scene = StashLookup(stash, by_range=False).statuses(asked)

    assert batched == per_scene
    missing = {scene_id for scene_id, status in batched.items() if status.value == "missing"}
    assert missing == {scene_id for scene_id in asked if scene_id in DELETED or scene_id > LIBRARY}
    # 400 sparse ids in chunks of 37: each block of ids is fetched once and answers the later chunks.
    assert 1 < batched_requests <= math.ceil(400 / 37)


def test_scattered_ids_are_fetched_by_block_once_not_chunk_by_chunk(
    stash: StashInterface, stash_server: StashTestServer
) -> None:
    """A real DLQ's scenes are scattered over its failure order: every chunk touches every block."""
    order = random.Random(3).sample(range(1, LIBRARY + 1), k=LIBRARY)
    lookup = StashLookup(stash)
    stash_server.reset_counts()
    answers: dict[int, Any] = {}
    for offset in range(0, LIBRARY, 1000):  # the engine asks once per chunk of 1,000 entries
        answers.update(lookup.statuses(order[offset : offset + 1000]))
    assert answers == {scene_id: SceneStatus.MISSING if scene_id in DELETED else SceneStatus.PRESENT
                       for scene_id in order}
    # The first chunk fetched the three blocks the library spans as one range; the others asked nothing.
    assert stash_server.operation_counts["findScenes"] == 1


def _slow_budget() -> LockBudget:
    """A budget that has seen one very slow write: every chunk gets its floor of 7 entries."""
    budget = LockBudget(1e-9, min_rows=7)
    budget.observe(1, 1.0)
    return budget


def test_chunks_shrunk_by_the_lock_budget_give_the_same_answer(
    tmp_path: Path, stash: StashInterface, plex: PlexServer, stash_server: StashTestServer, mocker: Any,
) -> None:
    """Chunks of 7 where 40 was the usual size, and nothing else changes.

    Read by scene, as the plugin reads a window: each scene's newest entry comes first, so the
    job re-queued for a scene does not depend on where the chunks end. (Rows without a
    ``scene_id`` column sort apart from their scene, so there it may: none here.)
    """
    mocker.patch.object(engine, "RECOVERY_CHUNK", 40)
    mocker.patch.object(engine, "LockBudget", _slow_budget)
    batched, per_entry = both_paths(tmp_path, 4, 250, stash, plex, stash_server, order="scene", null_columns=False)

    assert same_answer(batched, per_entry)
    assert batched["result"]["recovered"] > 20
    conn = sqlite3.connect(tmp_path / "batched" / "queue" / "data.db")
    try:  # one ``recovered_at`` per transaction
        transactions = conn.execute(
            "SELECT COUNT(DISTINCT recovered_at) FROM dead_letter_recoveries WHERE run_id != 'earlier'"
        ).fetchone()[0]
    finally:
        conn.close()
    # Chunks of 40 would write in 7 transactions at most; chunks of 7 in about 36 (less those that
    # the queue or the ledger settled whole, which write nothing).
    assert transactions >= 25
