"""Crash safety: a recovery killed with SIGKILL at random moments never loses or doubles a job.

A 5,000-entry recovery runs in a process of its own (``recovery_worker.py``, forked: the real DLQ, the real
``SQLiteAckQueue``, ``StashConnection`` to a StashTestServer, ``RECOVERY_CHUNK = 100`` so a
run is 50 transactions) and is killed 20 times in a row: at its very first write, just before
a random one of its write statements (inside a transaction or between two), and after it
finished. The worker stops itself at the chosen statement and waits for the kill, so where a
kill lands is decided by the seed, never by the machine's speed. After every kill the files
must be consistent; a last run then finishes the job. Budget: about 10 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from plexsync_recovery_plugin.sync_queue.operations import enqueue, open_queue
from plexsync_recovery_plugin.testing import StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START
from tests.reliability import recovery_worker
from tests.reliability.helpers import (
    assert_ledger_matches_queue,
    dlq_rows,
    insert_dlq_rows,
    ledger_rows,
    pending_scene_counts,
)

pytestmark = pytest.mark.slow

ENTRIES = 5000
KILLS = 20
CHUNK = 100


def _build_dlq(data_dir: Path) -> tuple[set[int], set[int], set[int]]:
    """Write the 5,000-entry DLQ; return (eligible scenes, pre-queued scenes, deleted scenes).

    Scene ``n`` fails at ``WINDOW_START + n % 1800``. Every 11th entry repeats an earlier
    scene, every 17th is a permanent error, every 50th is corrupt, every 10th scene is gone
    from Stash, every 13th is already queued, and 30 entries fall outside the window.
    """
    rows, eligible, deleted, pre_queued = [], set(), set(), set()
    for n in range(1, ENTRIES + 1):
        scene_id = n - 5 if n % 11 == 0 else n
        row = {"scene_id": scene_id, "failed_at": WINDOW_START + n % 1800}
        if n % 17 == 0:
            row["error_type"] = "PlexAuthError"
        elif n % 50 == 0:
            row["job_data"] = b"\x80\x04corrupt"
        elif n > ENTRIES - 30:
            row["failed_at"] = WINDOW_END + n
        if scene_id % 10 == 0:
            deleted.add(scene_id)
        if scene_id % 13 == 0:
            pre_queued.add(scene_id)
        rows.append(row)
    insert_dlq_rows(data_dir / "dlq.db", rows)
    for row in rows:
        if "error_type" in row or "job_data" in row or row["failed_at"] > WINDOW_END:
            continue
        if row["scene_id"] not in deleted and row["scene_id"] not in pre_queued:
            eligible.add(row["scene_id"])
    queue = open_queue(data_dir)
    try:
        for scene_id in sorted(pre_queued):
            enqueue(queue, scene_id, "metadata", {"queued": "by PlexSync"})
    finally:
        queue.close()
    return eligible, pre_queued, deleted


def _start(data_dir: Path, stash_url: str, **env: str) -> recovery_worker.Run:
    run = recovery_worker.start([str(data_dir), repr(WINDOW_START), repr(WINDOW_END), str(CHUNK), stash_url], **env)
    line = run.readline()
    if line != "started\n":
        run.kill()
        pytest.fail(f"recovery worker did not start: {line!r} {run.rest()}")
    return run


def _run_to_end(data_dir: Path, stash_url: str) -> dict[str, int]:
    """Run the worker uninterrupted; return its counts (with the number of write statements it sent)."""
    run = _start(data_dir, stash_url, COUNT_WRITES="1")
    line = run.readline()
    assert run.wait(60) == 0, line + run.rest()
    return json.loads(line)


def _run_until_paused(data_dir: Path, stash_url: str, kill_at: int) -> bool:
    """Run the worker until it stops before its ``kill_at``-th write, kill it; False if it finished first."""
    run = _start(data_dir, stash_url, KILL_AT=str(kill_at))
    line = run.readline()  # "paused ..." or the counts of a run that ended first
    run.kill()
    if line.startswith("paused "):
        return True
    assert line.startswith("{"), f"worker said {line!r}"
    return False


def _assert_consistent(data_dir: Path, dlq_before: list, pre_queued: set[int], eligible: set[int], note: str) -> None:
    counts = pending_scene_counts(data_dir)
    doubled = {scene: count for scene, count in counts.items() if count > 1}
    assert not doubled, f"{note}: scenes queued twice {sorted(doubled)[:10]}"
    assert set(counts) <= eligible | pre_queued, f"{note}: queued a scene that is not eligible"
    assert pre_queued <= set(counts), f"{note}: a job PlexSync queued is gone"
    assert_ledger_matches_queue(data_dir, recovered_scenes=eligible)
    assert dlq_rows(data_dir / "dlq.db") == dlq_before, f"{note}: a DLQ row changed"


def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(data_dir, dlq, tmp_path):
    eligible, pre_queued, deleted = _build_dlq(data_dir)
    dlq_before = dlq_rows(data_dir / "dlq.db")
    assert len(dlq_before) == ENTRIES
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    with StashTestServer(scenes=set(range(1, ENTRIES + 1)) - deleted) as stash:
        # Count on a copy how many write statements a whole run sends to the queue file.
        rehearsal = tmp_path / "rehearsal"
        shutil.copytree(data_dir, rehearsal)
        writes = _run_to_end(rehearsal, stash.url)["writes"]
        assert writes > 3 * len(eligible) // CHUNK, f"a whole run sent only {writes} write statements"

        # Each kill stops a run before one of its first few dozen writes (a restarted run
        # skips what earlier runs wrote, so 15 such kills spread over the whole job); three
        # stop it at its very first write, two let it finish and kill it after.
        per_run = max(2, writes // (KILLS - 5))
        moments = [rng.randint(2, per_run) for _ in range(KILLS - 5)]
        plan = [1, *moments[:6], 1, *moments[6:12], 1, *moments[12:], None, None]
        assert len(plan) == KILLS
        landed: Counter[str] = Counter()
        for kill, kill_at in enumerate(plan):
            before = len(ledger_rows(data_dir))
            if kill_at is None:
                _run_to_end(data_dir, stash.url)
                landed["after"] += 1
            elif not _run_until_paused(data_dir, stash.url, kill_at):
                landed["finished"] += 1
            elif kill_at == 1:
                landed["before"] += 1
                assert len(ledger_rows(data_dir)) == before, f"kill {kill}: a run killed before its first write wrote"
            else:
                landed["during"] += 1
            note = f"kill {kill} (seed {seed}, before write {kill_at})"
            _assert_consistent(data_dir, dlq_before, pre_queued, eligible, note)

        _run_to_end(data_dir, stash.url)

    counts = pending_scene_counts(data_dir)
    assert set(counts) == eligible | pre_queued, f"seed {seed}"
    assert all(count == 1 for count in counts.values()), f"seed {seed}"
    recorded = [record for record in ledger_rows(data_dir) if record["queue_row_id"] is not None]
    assert {record["scene_id"] for record in recorded} == eligible
    covered = [record for record in ledger_rows(data_dir) if record["queue_row_id"] is None]
    # entries covered by a job already pending when their run began: PlexSync's, or an earlier (killed) run's
    assert {record["scene_id"] for record in covered} <= pre_queued | eligible
    # one queued job per eligible scene; its repeats are recorded as covered by that same job
    assert len({record["job_id"] for record in recorded}) == len(eligible)
    _assert_consistent(data_dir, dlq_before, pre_queued, eligible, "final run")
    for row in recorded:  # each ledger row names a DLQ entry of the scene whose job went back
        dlq_row = next(row_ for row_ in dlq_before if row_[0] == row["dlq_id"])
        column = dlq_row[2]  # a repeat covered by the scene's job may have a corrupt blob of its own
        assert (column if column is not None else pickle.loads(dlq_row[3])["scene_id"]) == row["scene_id"]
    assert landed["during"] >= 10, f"too few kills landed mid-run ({dict(landed)}, seed {seed}): the test proved little"
    assert landed["before"] == 3, f"kills before the first write: {dict(landed)} (seed {seed})"
