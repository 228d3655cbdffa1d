"""Shared tools of the reliability tests: file inspectors (and the stand-ins of ``tests.fakes``).

The inspectors read PlexSync's files with plain ``sqlite3`` and ``pickle`` (never through
the code under test), so a bug in the plugin cannot hide itself from the check.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData, Stored
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.fakes import DownPlex, HealthyPlex, PlainStash, Recorder, SwitchablePlex

__all__ = [
    "DownPlex",
    "HealthyPlex",
    "PlainStash",
    "Recorder",
    "SwitchablePlex",
    "assert_ledger_matches_queue",
    "dlq_rows",
    "insert_dlq_rows",
    "ledger_rows",
    "pending_scene_counts",
    "queue_rows",
]


DLQ_COLUMNS = "id, job_id, scene_id, job_data, error_type, error_message, stack_trace, retry_count, failed_at"


def insert_dlq_rows(dlq_path: Path, rows: Iterable[dict[str, Any]]) -> list[int]:
    """Dead-letter raw rows in one transaction through PlexSync's data factory; return their ids.

    Each row may give ``scene_id`` (the column; may be None or any value), ``job_data`` (raw
    bytes or None; when absent, a pickled job for ``scene_id``, or for scene 0 if that is None),
    ``error_type`` (``PlexServerDown``), ``failed_at`` (Unix seconds, raw text, or a
    :class:`Stored` value; NULL when absent) and ``job_id``.
    """
    entries = []
    for row in rows:
        scene_id = row.get("scene_id")
        job = make_job(scene_id if scene_id is not None else 0, row.get("update_type", "metadata"), {"n": 1})
        failed_at = row.get("failed_at")
        entry: dict[str, Any] = {
            "job": job,
            "scene_id": scene_id,
            "job_id": row.get("job_id", job["job_id"]),
            "error_type": row.get("error_type", "PlexServerDown"),
            "stack_trace": "trace",
            "failed_at": Stored(None) if failed_at is None else failed_at,
        }
        if "job_data" in row:
            entry["job_data"] = row["job_data"]
        entries.append(entry)
    return PlexSyncData(Path(dlq_path).parent).add_dead_letters(entries)


def dlq_rows(dlq_path: Path) -> list[tuple[Any, ...]]:
    """Every DLQ row, every column, by id: compare before and after to prove nothing changed."""
    conn = sqlite3.connect(f"file:{dlq_path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT {DLQ_COLUMNS} FROM dead_letters ORDER BY id").fetchall()
    finally:
        conn.close()


def queue_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every row of PlexSync's queue with its decoded job: ``{'_id', 'status', 'job'}``."""
    path = Path(data_dir) / "queue" / "data.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT _id, status, data FROM ack_queue_default ORDER BY _id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [{"_id": row_id, "status": status, "job": pickle.loads(blob)} for row_id, status, blob in rows]


def pending_scene_counts(data_dir: Path) -> Counter[int]:
    """How many times each scene is pending (status ready) in the queue."""
    return Counter(row["job"]["scene_id"] for row in queue_rows(data_dir) if row["status"] in (0, 1))


def ledger_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every redrive ledger record in the queue's ``data.db``."""
    path = Path(data_dir) / "queue" / "data.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM dead_letter_recoveries ORDER BY dlq_id")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def assert_ledger_matches_queue(data_dir: Path, *, recovered_scenes: set[int] | None = None) -> None:
    """Each ledger row names a queue row of its scene; each queue row recovery wrote has a ledger row.

    Several ledger rows may name one queue row: a second DLQ entry of a scene is recorded as
    covered by the job the first one queued. A row naming no queue row records an entry
    covered by a job the plugin did not queue (PlexSync's own).

    Args:
        data_dir: The PlexSync data directory.
        recovered_scenes: Scenes only recovery put on the queue (others were queued by the test).
    """
    queue = {row["_id"]: row for row in queue_rows(data_dir)}
    ledger = ledger_rows(data_dir)
    by_queue_row = Counter(record["queue_row_id"] for record in ledger)
    for record in ledger:
        if record["queue_row_id"] is None and record["job_id"] is None:
            continue  # covered by a job PlexSync queued
        row = queue.get(record["queue_row_id"])
        assert row is not None, f"ledger row {record} names no queue row"
        assert row["job"]["scene_id"] == record["scene_id"], f"ledger row {record} names another scene's job"
        assert row["job"]["job_id"] == record["job_id"]
    if recovered_scenes is not None:
        for row_id, row in queue.items():
            if row["job"]["scene_id"] in recovered_scenes:
                scene_id = row["job"]["scene_id"]
                assert by_queue_row[row_id] >= 1, f"queue row {row_id} (scene {scene_id}) has no ledger row"
