"""Outage windows whose recovery is not finished yet, kept until a run completes them.

A window becomes pending when its run was deferred (Plex unhealthy, Stash unable to answer,
queue not writable). It survives restarts, merges with any overlapping or touching window,
and is dropped only after a recovery over it completed. Callers hold the recovery lock.

Windows select DLQ entries at SQLite's millisecond precision, so two windows "touch" when
no millisecond lies between them: the merged window then selects exactly the entries of the
two, never an entry that failed between two outages.
"""

from __future__ import annotations

from pathlib import Path

from ..state_db import STATE_FILE_NAME, connect_state_db
from .dlq_window import selected_milliseconds

__all__ = ["PendingWindows", "windows_touch"]



def windows_touch(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two windows overlap, or no millisecond a DLQ entry could carry lies between them."""
    (a_start, a_end), (b_start, b_end) = first, second
    if a_start <= b_end and b_start <= a_end:
        return True
    low, high = (first, second) if a_end < b_start else (second, first)
    return selected_milliseconds(*high)[0] <= selected_milliseconds(*low)[1] + 1


class PendingWindows:
    """The pending windows of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def add(self, start: float, end: float) -> tuple[float, float]:
        """Make ``[start, end]`` pending, merged with the windows it overlaps or touches.

        Returns:
            The merged window now pending.
        """
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                rows = conn.execute("SELECT id, start, end FROM pending_windows ORDER BY start").fetchall()
                merged = True
                while merged:  # a merge can make the window reach one it did not touch before
                    merged = False
                    for row in rows:
                        if windows_touch((start, end), (row[1], row[2])):
                            conn.execute("DELETE FROM pending_windows WHERE id = ?", (row[0],))
                            start, end = min(start, row[1]), max(end, row[2])
                            rows.remove(row)
                            merged = True
                            break
                conn.execute("INSERT INTO pending_windows (start, end) VALUES (?, ?)", (start, end))
        finally:
            conn.close()
        return start, end

    def windows(self) -> list[tuple[float, float]]:
        """Return the pending windows, oldest first."""
        if not (self.data_dir / STATE_FILE_NAME).exists():
            return []
        conn = connect_state_db(self.data_dir)
        try:
            return [(row[0], row[1]) for row in conn.execute("SELECT start, end FROM pending_windows ORDER BY start")]
        finally:
            conn.close()

    def remove(self, start: float, end: float) -> None:
        """Drop the window ``[start, end]`` after a completed run over it."""
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                conn.execute("DELETE FROM pending_windows WHERE start = ? AND end = ?", (start, end))
        finally:
            conn.close()
