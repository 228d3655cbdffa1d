"""Wiring the plugin next to a worker shaped like PlexSync's, with public names only.

PlexSync's ``SyncWorker(queue, dlq, config, data_dir)`` builds its own outage history and
circuit breaker and takes none from outside. The stand-ins below have that shape: the
breaker appends an open record each time it opens (again from half-open too) and closes only
the newest open record; the history keeps its records in memory and rewrites the whole file
on each change (in place, or through a temporary file and a rename). Beside it the user runs
``HistoryFollower(data_dir).start_following()`` and a connected ``RecoveryPlugin``.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

import pytest

from plexsync_recovery_plugin import DeadLetterQueue, RecoveryPlugin
from plexsync_recovery_plugin.plex.health import PlexConnection
from plexsync_recovery_plugin.signals import outage_ended, recovery_completed
from plexsync_recovery_plugin.worker.history_follower import HistoryFollower
from tests.conftest import drain
from tests.fakes import Clock
from tests.worker.conftest import T0, WATCH_TOKEN


class PlexSyncShapedHistory:
    """Outage records in memory (30 at most), the whole ``outage_history.json`` rewritten on each change."""

    def __init__(self, data_dir: Path, *, in_place: bool) -> None:
        self.path = data_dir / "outage_history.json"
        self.in_place = in_place
        self.records: deque[dict[str, Any]] = deque(maxlen=30)
        if self.path.exists():
            self.records.extend(json.loads(self.path.read_text()))

    def record_outage_start(self, started_at: float) -> None:
        self.records.append({"started_at": started_at, "ended_at": None, "duration": None, "jobs_affected": 0})
        self._save()

    def record_outage_end(self, ended_at: float, jobs_affected: int = 0) -> None:
        for record in reversed(self.records):  # the newest open record only
            if record["ended_at"] is None:
                record.update(ended_at=ended_at, duration=ended_at - record["started_at"], jobs_affected=jobs_affected)
                self._save()
                return

    def _save(self) -> None:
        text = json.dumps(list(self.records), indent=2)
        if self.in_place:
            with open(self.path, "w", encoding="utf-8") as handle:  # truncate, then write
                handle.write(text)
            return
        temp = f"{self.path}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, self.path)


class PlexSyncShapedBreaker:
    """Closed, open, half-open; every opening records an outage start, a close ends the newest."""

    def __init__(self, failure_threshold: int, recovery_timeout: float, outage_history: PlexSyncShapedHistory,
                 clock: Callable[[], float]) -> None:
        self.failure_threshold, self.recovery_timeout = failure_threshold, recovery_timeout
        self.history, self.clock = outage_history, clock
        self.state, self.failures, self.opened_at = "closed", 0, 0.0

    def can_execute(self) -> bool:
        if self.state == "open" and self.clock() - self.opened_at >= self.recovery_timeout:
            self.state = "half_open"
        return self.state != "open"

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or (self.state == "closed" and self.failures >= self.failure_threshold):
            self.state, self.opened_at = "open", self.clock()
            self.history.record_outage_start(self.opened_at)

    def record_success(self) -> None:
        if self.state == "half_open":
            self.history.record_outage_end(self.clock())
        self.state, self.failures = "closed", 0


class PlexSyncShapedWorker:
    """``SyncWorker(queue, dlq, config, data_dir)``: its history and breaker are its own."""

    def __init__(self, queue: Any, dlq: Any, config: Any, data_dir: Path | None = None, *,
                 clock: Callable[[], float], in_place: bool = True) -> None:
        self.queue, self.dlq, self.config, self.data_dir = queue, dlq, config, data_dir
        assert data_dir is not None
        self.circuit_breaker = PlexSyncShapedBreaker(5, 60.0, PlexSyncShapedHistory(data_dir, in_place=in_place), clock)


@pytest.fixture
def plex(plex_server):
    connection = PlexConnection(plex_server.url, WATCH_TOKEN, timeout=2.0)
    yield connection
    connection.close()


@pytest.mark.parametrize("in_place", [True, False], ids=["rewritten-in-place", "replaced"])
def test_a_follower_beside_plexsync_s_worker_recovers_its_breaker_chain_once(
    in_place, dlq, plex, stash, data_dir, add_entry
):
    # The README's wiring: only public constructors and names.
    plugin = RecoveryPlugin(DeadLetterQueue(data_dir), None, stash, plex, data_dir).connect()
    follower = HistoryFollower(data_dir).start_following(interval=0.02)
    clock = Clock(T0)
    worker = PlexSyncShapedWorker(None, dlq, None, data_dir, clock=clock, in_place=in_place)
    breaker = worker.circuit_breaker

    done, sent = threading.Event(), []
    results: list[Any] = []

    def on_completed(sender: Any, *, result: Any, **kwargs: Any) -> None:
        results.append(result)
        done.set()

    try:
        with recovery_completed.connected_to(on_completed, sender=plugin), outage_ended.connected_to(
            lambda sender, **kw: sent.append((kw["start"], kw["end"]))
        ):
            for _ in range(5):
                breaker.record_failure()  # opens at T0
            add_entry(1, failed_at=T0 + 5)
            for reopened_at, scene in ((T0 + 60, 2), (T0 + 120, 3)):  # half-open, fails again: reopens
                clock.now = reopened_at
                assert breaker.can_execute()
                breaker.record_failure()
                add_entry(scene, failed_at=reopened_at + 5)
            clock.now = T0 + 180
            assert breaker.can_execute()
            breaker.record_success()  # closes the newest open record only
            assert done.wait(15), "the follower never recovered the outage"
            follower.stop()
    finally:
        follower.stop()
        plugin.disconnect()
        plugin.close()

    records = json.loads((data_dir / "outage_history.json").read_text())
    assert [r["ended_at"] for r in records] == [None, None, T0 + 180]  # PlexSync's breaker chain
    assert sent == [(T0, T0 + 180)]
    assert [result.recovered for result in results] == [3]
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]
    assert not follower.following


def test_start_following_takes_the_baseline_and_refuses_a_bad_interval(data_dir):
    (data_dir / "outage_history.json").write_text(
        json.dumps([{"started_at": T0, "ended_at": T0 + 30, "duration": 30, "jobs_affected": 0}])
    )
    follower = HistoryFollower(data_dir)
    with pytest.raises(ValueError, match="interval must be a positive number of seconds, got 0"):
        follower.start_following(interval=0)
    sent: list[Any] = []
    with outage_ended.connected_to(lambda sender, **kw: sent.append(kw)):
        follower.start_following(interval=60)
        try:
            with pytest.raises(RuntimeError, match="following already"):
                follower.start_following()
        finally:
            follower.stop()
        assert follower.poll(everything=True) == []  # the outage over before it came is the baseline
    assert sent == [] and not follower.following
