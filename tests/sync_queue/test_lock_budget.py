"""Chunks sized by time on the queue's write lock: the budget's arithmetic and the engine's cut."""

from __future__ import annotations

import time
from typing import Any

import pytest

from plexsync_recovery_plugin import engine
from plexsync_recovery_plugin.engine import BatchJobWriter, DryRunWriter, Outcome, PendingJob
from plexsync_recovery_plugin.sync_queue.operations import LockBudget, QueueFile


def test_the_budget_sets_no_limit_until_a_transaction_was_timed_then_fits_the_target() -> None:
    budget = LockBudget(0.010, min_rows=100)
    assert budget.rows() is None
    budget.observe(500, 0.010)  # 20 us an entry: 500 fit 10 ms
    assert budget.rows() == 500
    budget.observe(500, 0.050)  # a slow one (100 us an entry) pulls the cost up, not all the way
    assert 100 < budget.rows() < 500
    for _ in range(30):
        budget.observe(1000, 1.0)  # 1 ms an entry: 10 would fit, the floor holds
    assert budget.rows() == 100
    for _ in range(30):
        budget.observe(1000, 0.001)  # 1 us an entry: 10,000 fit
    assert budget.rows() == pytest.approx(10_000, rel=0.05)
    budget.observe(0, 0.5)  # nothing written tells nothing
    assert budget.rows() == pytest.approx(10_000, rel=0.05)


def test_a_budget_refuses_a_target_or_floor_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive target"):
        LockBudget(0.0)
    with pytest.raises(ValueError, match="-1"):
        LockBudget(min_rows=-1)


def test_chunks_take_the_size_asked_for_each_one() -> None:
    sizes = iter([3, 2, 5, 5])
    chunks = list(engine._chunks(range(12), lambda: next(sizes)))
    assert chunks == [[0, 1, 2], [3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert list(engine._chunks([], lambda: 4)) == []


def test_a_chunk_is_the_usual_size_until_the_writer_measured_a_slow_one(queue, monkeypatch) -> None:
    monkeypatch.setattr(engine, "RECOVERY_CHUNK", 1000)
    writer = BatchJobWriter(QueueFile(queue.path), "run", budget=LockBudget(0.025, min_rows=100))
    assert engine._chunk_size(writer) == 1000  # nothing measured yet
    writer.budget.observe(1000, 0.010)  # fast: 2,500 would fit, the usual size stays the ceiling
    assert engine._chunk_size(writer) == 1000
    for _ in range(20):
        writer.budget.observe(1000, 0.100)  # a slow disk: 100 us an entry
    assert engine._chunk_size(writer) == 250
    assert engine._chunk_size(DryRunWriter()) == 1000  # writers that hold no lock set no limit


def test_the_writer_learns_from_the_time_on_the_lock_not_from_the_whole_write(queue, monkeypatch) -> None:
    queue_file = QueueFile(queue.path)
    writer = BatchJobWriter(queue_file, "run", budget=LockBudget(0.025, min_rows=100))
    real_write = queue_file.write_chunk

    def slow_around_the_lock(*args: Any) -> list[str | None]:
        time.sleep(0.2)  # encoding, reading, a collection: none of it holds PlexSync off
        reasons = real_write(*args)
        queue_file.last_lock_seconds = (0.001, 0.003)  # what this transaction spent asking for and holding the lock
        return reasons

    monkeypatch.setattr(queue_file, "write_chunk", slow_around_the_lock)
    for scene_id in range(1, 5):
        writer.add(PendingJob({"id": scene_id}, (scene_id, "2026-02-15 19:00:00"), 0.0, scene_id, "metadata", {}))
    outcomes = writer.flush(queue_file.snapshot(None))
    assert [outcome.outcome for outcome in outcomes] == [Outcome.RECOVERED] * 4
    assert writer.budget.seconds_per_row == pytest.approx(0.004 / 4)
