"""The outages the watch daemon detected, kept in the plugin's own ``recovery_state.db``.

The daemon never writes PlexSync's ``outage_history.json``: PlexSync's worker keeps that
history in memory and rewrites the whole file (a record another process adds is lost at its
next write), and its circuit breaker records each outage itself. The daemon's own detections
live here instead, one row per outage. Which of them were recovered is not kept here:
``outage_source.OutageSource`` answers that for every source, so an outage that ended while nobody
could recover it (no ``dlq.db`` yet, a crash) is sent later, once. (The ``announced_at``
column is what older versions used for that; ``OutageSource`` carries it over once.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..state import connect_state_db, read_state_rows
from .outages import SOURCE_WATCH, Outage

__all__ = ["DetectedOutage", "DetectedOutages", "KEEP_ROWS"]

#: Newest rows kept; older ones are dropped when a new outage opens.
KEEP_ROWS = 100


_COLUMNS = "id, started_at, ended_at, dated_from, jobs_affected, announced_at"


@dataclass(frozen=True)
class DetectedOutage:
    """One row: an outage the daemon detected.

    Attributes:
        id: Row id.
        started_at: Start (Unix seconds).
        ended_at: End, or None while it lasts.
        dated_from: Which probe ``started_at`` is (``outage_detector.DATED_FROM_*``).
        jobs_affected: DLQ entries in its window when it ended.
        announced_at: Only in rows of older versions (see the module docstring); else None.
    """

    id: int
    started_at: float
    ended_at: float | None
    dated_from: str
    jobs_affected: int
    announced_at: float | None


def _row(values: tuple[object, ...]) -> DetectedOutage:
    row_id, started, ended, dated_from, jobs, announced = values
    return DetectedOutage(
        int(row_id),  # type: ignore[call-overload]
        float(started),  # type: ignore[arg-type]
        None if ended is None else float(ended),  # type: ignore[arg-type]
        str(dated_from),
        int(jobs),  # type: ignore[call-overload]
        None if announced is None else float(announced),  # type: ignore[arg-type]
    )


class DetectedOutages:
    """Owner of the ``detected_outages`` table of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def __repr__(self) -> str:
        return f"DetectedOutages({str(self.data_dir)!r})"

    def _select(self, where: str = "", params: tuple[object, ...] = ()) -> list[DetectedOutage]:
        conn = connect_state_db(self.data_dir)
        try:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM detected_outages {where} ORDER BY id", params).fetchall()
        finally:
            conn.close()
        return [_row(tuple(row)) for row in rows]

    def current(self) -> DetectedOutage | None:
        """The open outage, or None."""
        rows = self._select("WHERE ended_at IS NULL")
        return rows[-1] if rows else None

    def open(self, started_at: float, dated_from: str) -> DetectedOutage | None:
        """Record an outage that began at ``started_at``; None (nothing written) if one is open."""
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                if conn.execute("SELECT 1 FROM detected_outages WHERE ended_at IS NULL").fetchone():
                    return None
                cursor = conn.execute(
                    "INSERT INTO detected_outages (started_at, dated_from) VALUES (?, ?)",
                    (float(started_at), dated_from),
                )
                conn.execute(
                    "DELETE FROM detected_outages WHERE id <= (SELECT MAX(id) FROM detected_outages) - ?",
                    (KEEP_ROWS,),
                )
                row_id = int(cursor.lastrowid or 0)
        finally:
            conn.close()
        return DetectedOutage(row_id, float(started_at), None, dated_from, 0, None)

    def close(self, started_at: float, ended_at: float, jobs_affected: int, dated_from: str) -> DetectedOutage:
        """Close the open outage as ``[started_at, ended_at]``; if its row was lost (state file reset), record it now.

        The open row takes ``started_at`` too: an outage whose readings went back in time
        (the clock stepped back) is closed over the earliest to the latest of them.
        """
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                row = conn.execute("SELECT MAX(id) FROM detected_outages WHERE ended_at IS NULL").fetchone()
                if row is not None and row[0] is not None:
                    row_id = int(row[0])
                    conn.execute(
                        "UPDATE detected_outages SET started_at = ?, ended_at = ?, jobs_affected = ? WHERE id = ?",
                        (float(started_at), float(ended_at), int(jobs_affected), row_id),
                    )
                else:
                    cursor = conn.execute(
                        "INSERT INTO detected_outages (started_at, ended_at, dated_from, jobs_affected)"
                        " VALUES (?, ?, ?, ?)",
                        (float(started_at), float(ended_at), dated_from, int(jobs_affected)),
                    )
                    row_id = int(cursor.lastrowid or 0)
            values = conn.execute(f"SELECT {_COLUMNS} FROM detected_outages WHERE id = ?", (row_id,)).fetchone()
        finally:
            conn.close()
        return _row(tuple(values))

    def outages(self) -> list[Outage]:
        """Every recorded outage, oldest first, read without creating the file or the table.

        A row whose end is before its start (written by an older version when the clock
        stepped back) reads as the window between the two.
        """
        rows = read_state_rows(self.data_dir, f"SELECT {_COLUMNS} FROM detected_outages ORDER BY id")
        return [_outage(_row(values)) for values in rows]


def _outage(row: DetectedOutage) -> Outage:
    if row.ended_at is None:
        return Outage(row.started_at, None, row.jobs_affected, SOURCE_WATCH, 1, (row.started_at,))
    low, high = min(row.started_at, row.ended_at), max(row.started_at, row.ended_at)
    return Outage(low, high, row.jobs_affected, SOURCE_WATCH, 1, (row.started_at,), clock_stepped=high != row.ended_at)
