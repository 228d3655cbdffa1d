"""Timing the "already covered" read over a queue that holds months of acked jobs.

Why: PlexSync never clears acked rows, so after months its queue holds every job it ever
ran. A recovery reads the queue once per run (live jobs of any age, acked jobs enqueued
since the window began); the bound is applied in SQL so old rows are never unpickled. This
builds such a queue (rows exactly as ``SQLiteAckQueue.put`` writes them, then acked) and
times that read. ``plexsync-recovery bench --dedup`` prints it.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from persistqueue import SQLiteAckQueue
from persistqueue.serializers import pickle as queue_pickle

from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_TABLE, make_job
from ..sync_queue.operations import QueueFile

__all__ = ["DedupReport", "build_long_lived_queue", "run_dedup_bench"]

#: The bench's outage starts here (2026-02-15 19:00:00 UTC); the history lies before it.
WINDOW_START = 1771182000.0
_HISTORY_SECONDS = 180 * 86_400
#: Live jobs and jobs acked after the window began: what the read must find.
_LIVE_ROWS = 200
_RECENT_ACKED_ROWS = 800


@dataclass
class DedupReport:
    """One read of a long-lived queue (seconds; ``read_seconds`` holds one value per run).

    Attributes:
        acked_rows: Acked rows enqueued before the window (the history).
        build_seconds: Time to write the queue.
        file_mb: Size of ``data.db``.
        read_seconds: ``QueueFile.snapshot(window start)``: live jobs plus acked jobs since the window.
        live_scenes: Scenes with a live job that the read found.
        recent_acked_scenes: Scenes with an acked job since the window began that it found.
    """

    acked_rows: int
    build_seconds: float
    file_mb: float
    read_seconds: list[float]
    live_scenes: int
    recent_acked_scenes: int

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


def _rows(acked_rows: int) -> Iterator[tuple[bytes, float, int]]:
    step = _HISTORY_SECONDS / max(acked_rows, 1)
    for index in range(acked_rows):
        job = make_job(index % 50_000 + 1, "metadata", {"title": f"Scene {index}", "tags": ["a", "b", "c"]})
        yield queue_pickle.dumps(job), WINDOW_START - _HISTORY_SECONDS + index * step, 5
    for index in range(_RECENT_ACKED_ROWS):
        yield queue_pickle.dumps(make_job(60_000 + index, "metadata", {})), WINDOW_START + index, 5
    for index in range(_LIVE_ROWS):
        yield queue_pickle.dumps(make_job(70_000 + index, "metadata", {})), WINDOW_START - 86_400 * 30, 0


def build_long_lived_queue(data_dir: Path, acked_rows: int) -> Path:
    """Write PlexSync's queue with ``acked_rows`` old acked jobs, recent acked jobs and live ones; return its path."""
    SQLiteAckQueue(str(data_dir / QUEUE_DIR_NAME), auto_resume=False).close()  # persist-queue's own table
    path = data_dir / QUEUE_DIR_NAME
    conn = sqlite3.connect(path / "data.db")
    try:
        with conn:
            conn.executemany(f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, ?)", _rows(acked_rows))
    finally:
        conn.close()
    return path


def run_dedup_bench(acked_rows: int, *, runs: int = 3, work_dir: Path | None = None) -> DedupReport:
    """Build the queue once, then time the read ``runs`` times."""
    with tempfile.TemporaryDirectory(prefix="plexsync-dedup-bench-", dir=work_dir) as temp:
        started = time.perf_counter()
        queue_path = build_long_lived_queue(Path(temp), acked_rows)
        build = time.perf_counter() - started
        owner = QueueFile(queue_path)
        seconds: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            snapshot = owner.snapshot(WINDOW_START)
            seconds.append(time.perf_counter() - started)
        size = (queue_path / "data.db").stat().st_size / 1e6
    return DedupReport(acked_rows, build, size, seconds, len(snapshot.live), len(snapshot.acked))
