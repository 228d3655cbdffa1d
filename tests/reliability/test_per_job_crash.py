"""The per-job path (claim, enqueue, mark done) under SIGKILL, with a worker that clears acked rows.

A queue written one job at a time cannot share a transaction with the ledger. Before the
claim, a crash between a job's write and its ledger row, followed by PlexSync's worker
taking, acking and clearing that job, made the next run queue the scene again (2 of 8
trials). Here a recovery worker on the per-job path is killed just before a write statement
the seed picks (the worker stops itself there and waits for the kill: no timer decides where
it lands); after each kill a PlexSync worker takes every job, acks it and clears the acked
rows; a last run finishes. Every eligible scene must have been synced exactly once. Budget: a
few seconds.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

from tests.conftest import WINDOW_END, WINDOW_START
from tests.reliability import recovery_worker
from tests.reliability.helpers import insert_dlq_rows

pytestmark = pytest.mark.slow

ENTRIES = 150
TRIALS = 8
CHUNK = 20
DELETED = {scene_id for scene_id in range(1, ENTRIES + 1) if scene_id % 9 == 0}


def _start(data_dir: Path, **env: str) -> recovery_worker.Run:
    args = [str(data_dir), repr(WINDOW_START), repr(WINDOW_END), str(CHUNK),
            "plain:" + ",".join(map(str, sorted(DELETED))), "per-job"]
    run = recovery_worker.start(args, **env)
    line = run.readline()
    if line != "started\n":
        run.kill()
        pytest.fail(f"recovery worker did not start: {line!r} {run.rest()}")
    return run


def _sync_and_clear(data_dir: Path, synced: Counter[int]) -> None:
    """PlexSync's worker: take and ack every job, count its scene as synced, then clear acked rows."""
    worker = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=True)
    try:
        while True:
            try:
                job = worker.get(block=False)
            except Empty:
                break
            synced[job["scene_id"]] += 1
            worker.ack(job)
        worker.clear_acked_data(max_delete=100_000, keep_latest=0)
    finally:
        worker.close()


def test_sigkill_on_the_per_job_path_never_sends_a_scene_twice(data_dir, dlq):
    insert_dlq_rows(data_dir / "dlq.db", [{"scene_id": n, "failed_at": WINDOW_START + n} for n in range(1, ENTRIES + 1)])
    eligible = set(range(1, ENTRIES + 1)) - DELETED
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    synced: Counter[int] = Counter()
    paused = 0
    for _ in range(TRIALS):
        # A job is a few write statements (claim, job, done): the pick lands between any two of them.
        run = _start(data_dir, KILL_AT=str(rng.randint(1, 4 * ENTRIES // TRIALS)))
        line = run.readline()
        run.kill()
        assert line.startswith(("paused ", "{")), f"worker said {line!r}: {run.rest()}"
        paused += line.startswith("paused ")
        _sync_and_clear(data_dir, synced)
    final = _start(data_dir)
    code = final.wait(120)
    assert code == 0, final.rest()
    _sync_and_clear(data_dir, synced)

    assert paused >= TRIALS - 1, f"only {paused} of {TRIALS} runs were stopped mid-run (seed {seed})"
    twice = {scene: count for scene, count in synced.items() if count > 1}
    assert not twice, f"scenes synced more than once (seed {seed}): {sorted(twice)[:10]}"
    assert set(synced) == eligible, f"seed {seed}: lost {sorted(eligible - set(synced))[:10]}"
