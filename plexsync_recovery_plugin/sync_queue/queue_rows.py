"""Reading persist-queue's table on ``QueueFile``'s connection: row ids, time-ordered search, decoded rows.

Only ``QueueFile`` opens the queue file; these functions work on its connection, as the
ledger's do.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Iterator

from .queue_snapshot import QueueRow, scene_id_of_job

__all__ = ["ACKED_SCAN_MARGIN", "decoded", "first_row_since", "high_water"]

logger = logging.getLogger(__name__)

#: Acked rows are read from this long before the window's start: room for a clock that stepped back.
ACKED_SCAN_MARGIN = 86_400.0
_ACK_FAILED = 9  # persist-queue's AckStatus.ack_failed: never a job to cover anything


def high_water(conn: sqlite3.Connection, table: str) -> int:
    """The highest row id ``table`` has ever given out (AUTOINCREMENT keeps it after deletes)."""
    row = conn.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),"
        f" coalesce((SELECT max(_id) FROM {table}), 0))",
        (table,),
    ).fetchone()
    return int(row[0])


def first_row_since(conn: sqlite3.Connection, table: str, moment: float, high: int) -> int:
    """The first row id whose enqueue time is at least ``moment`` (``high + 1`` if none), by binary search.

    Rows are appended with the time of ``put``, so times grow with ids; a clock that stepped
    back by less than ``ACKED_SCAN_MARGIN`` cannot hide a row from the scan that follows,
    and one that stepped back further can only make a job be sent again.
    """
    probe = f"SELECT _id, timestamp FROM {table} WHERE _id >= ? ORDER BY _id LIMIT 1"
    low, top = 0, high + 1
    while low < top:
        middle = (low + top) // 2
        row = conn.execute(probe, (middle,)).fetchone()
        if row is None or row[0] > high:
            top = middle
        elif (row[1] or 0.0) >= moment:
            top = min(middle, int(row[0]))
        else:
            low = int(row[0]) + 1
    return low


def decoded(rows: Iterator[tuple[Any, ...]]) -> Iterator[QueueRow]:
    """``(row id, scene id or None, status, time)`` of each ``(_id, data, status, timestamp)`` row."""
    for row_id, blob, status, timestamp in rows:
        scene_id = scene_id_of_job(blob)
        if scene_id is None and status != _ACK_FAILED:
            logger.warning("queue row %s is not a readable job; ignored for de-duplication", row_id)
        yield int(row_id), scene_id, int(status), float(timestamp or 0.0)
