"""The floor of a recovery on this machine: the work no implementation can skip, and nothing else.

Why: the speed targets are set against an estimate of what reading, decoding and writing
N entries must cost. This measures it on the bench's own data (:mod:`.bench_data`), with
the safety the plugin may not drop and none of its gates: the window's rows in scene order
in one statement, each job decoded by ``safe_loads``, one new job per scene pickled as
PlexSync's ``put`` does, and jobs and ledger records written in one transaction per 1,000
entries with one statement each. No Stash, no Plex, no dedup, no counting of outcomes.
A recovery that took this long would do nothing but this. ``bench --floor`` prints it.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persistqueue.serializers import pickle as queue_pickle

from .bench_data import build_data_dir
from ..sync_queue import operations as ledger
from ..sync_queue.dlq import DLQ_FILE_NAME
from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, make_job
from ..decode import safe_loads
from .plexsync_data import plexsync_timestamp

__all__ = ["FLOOR_CHUNK", "FloorReport", "run_floor_bench"]

#: Entries per transaction, as a recovery's chunk.
FLOOR_CHUNK = 1000
_BY_SCENE = """
SELECT id, scene_id, failed_at, job_data FROM dead_letters
WHERE failed_at >= :low AND failed_at <= :high AND error_type = 'PlexServerDown'
ORDER BY scene_id, failed_at, id
"""


@dataclass
class FloorReport:
    """The floor's steps, in seconds (each list holds one value per run).

    Attributes:
        entries: In-window entries read.
        jobs: Jobs written (one per scene).
        read_seconds: The window's rows in scene order, one statement.
        decode_seconds: ``safe_loads`` of every entry's job.
        encode_seconds: A new job per scene, pickled as persist-queue does.
        write_seconds: Jobs and ledger records, one transaction per ``FLOOR_CHUNK`` entries.
        total_seconds: The sum, per run.
    """

    entries: int
    jobs: int
    read_seconds: list[float]
    decode_seconds: list[float]
    encode_seconds: list[float]
    write_seconds: list[float]
    total_seconds: list[float]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def _one_run(data_dir: Path, start: float, end: float) -> tuple[int, int, list[float]]:
    """Read, decode, encode and write the window once; return entries, jobs and each step's seconds."""
    began = time.perf_counter()
    dlq = sqlite3.connect(f"file:{data_dir / DLQ_FILE_NAME}?mode=ro", uri=True)
    try:
        rows = dlq.execute(_BY_SCENE, {"low": plexsync_timestamp(start), "high": plexsync_timestamp(end)}).fetchall()
    finally:
        dlq.close()
    read = time.perf_counter()
    jobs = [safe_loads(row[3]) for row in rows]
    decoded = time.perf_counter()
    now = time.time()
    blobs: list[tuple[int, int, bytes, int]] = []  # (first row of the scene, scene, pickled job, job id)
    for index, (row, job) in enumerate(zip(rows, jobs)):
        if not blobs or blobs[-1][1] != row[1]:
            queued = make_job(row[1], job["update_type"], job.get("data"), now=now)
            blobs.append((index, row[1], queue_pickle.dumps(queued), queued["job_id"]))
    encoded = time.perf_counter()
    _write(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME, rows, blobs, now)
    written = time.perf_counter()
    return len(rows), len(blobs), [read - began, decoded - read, encoded - decoded, written - encoded]


def _write(db_path: Path, rows: list[tuple[Any, ...]], blobs: list[tuple[int, int, bytes, int]], now: float) -> None:
    """Jobs and ledger records, ``FLOOR_CHUNK`` entries a transaction, as a recovery's session writes them."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("BEGIN IMMEDIATE")
        ledger.ensure_ledger(conn)
        conn.execute("COMMIT")
        job_of: dict[int, tuple[int, int]] = {}  # scene -> (job id, queue row)
        next_job = 0
        for offset in range(0, len(rows), FLOOR_CHUNK):
            first = next_job
            while next_job < len(blobs) and blobs[next_job][0] < offset + FLOOR_CHUNK:
                next_job += 1  # the jobs of the scenes that begin in this chunk
            part = blobs[first:next_job]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, 1)",
                             [(blob, now) for _, _, blob, _ in part])
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            job_of.update((scene, (job_id, last - len(part) + 1 + index)) for index, (_, scene, _, job_id) in enumerate(part))
            ledger.write_records(conn, [(row[0], row[2], row[1], *job_of[row[1]], "floor", now, ledger.DONE, None)
                                        for row in rows[offset : offset + FLOOR_CHUNK]])
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def run_floor_bench(
    entries: int, *, acked_history: int = 100_000, repeat: int = 3, work_dir: str | Path | None = None
) -> FloorReport:
    """Build the bench's data for ``entries`` and time the floor ``repeat`` times, each on a fresh copy.

    Raises:
        ValueError: ``entries`` or ``repeat`` is below 1.
    """
    if entries < 1 or repeat < 1:
        raise ValueError(f"entries and repeat must be positive, got {entries!r} and {repeat!r}")
    steps: list[list[float]] = []
    read_entries = jobs = 0
    with tempfile.TemporaryDirectory(prefix="plexsync-bench-floor-", dir=work_dir) as tmp:
        template = Path(tmp) / "template"
        dataset = build_data_dir(template, entries, noise=entries, acked_history=acked_history)
        for number in range(repeat):
            copy = Path(tmp) / f"run{number}"
            shutil.copytree(template, copy)
            read_entries, jobs, seconds = _one_run(copy, dataset.start, dataset.end)
            steps.append(seconds)
            shutil.rmtree(copy, ignore_errors=True)
    read, decode, encode, write = (list(column) for column in zip(*steps))
    return FloorReport(read_entries, jobs, read, decode, encode, write, [sum(run) for run in steps])
