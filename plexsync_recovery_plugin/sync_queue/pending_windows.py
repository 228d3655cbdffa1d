"""Outage windows whose recovery is not finished yet, kept until a run completes them.

A window becomes pending when its run was deferred (Plex unhealthy, Stash unable to answer,
queue not writable). It survives restarts, merges with any overlapping or adjacent window,
and is dropped only after a recovery over it completed. Callers hold the recovery lock.
"""

from __future__ import annotations

from pathlib import Path

from ..state_db import STATE_FILE_NAME, connect_state_db

__all__ = ["ADJACENT_SECONDS", "PendingWindows"]

#: Windows closer than this merge: DLQ times are whole seconds, so a smaller gap holds no entry.
ADJACENT_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    start REAL NOT NULL,
    end REAL NOT NULL
);
"""


class PendingWindows:
    """The pending windows of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def add(self, start: float, end: float) -> tuple[float, float]:
        """Make ``[start, end]`` pending, merged with the windows it overlaps or touches.

        Returns:
            The merged window now pending.
        """
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            with conn:
                while True:
                    row = conn.execute(
                        "SELECT id, start, end FROM pending_windows WHERE start <= ? AND end >= ? LIMIT 1",
                        (end + ADJACENT_SECONDS, start - ADJACENT_SECONDS),
                    ).fetchone()
                    if row is None:
                        break
                    conn.execute("DELETE FROM pending_windows WHERE id = ?", (row[0],))
                    start, end = min(start, row[1]), max(end, row[2])
                conn.execute("INSERT INTO pending_windows (start, end) VALUES (?, ?)", (start, end))
        finally:
            conn.close()
        return start, end

    def windows(self) -> list[tuple[float, float]]:
        """Return the pending windows, oldest first."""
        if not (self.data_dir / STATE_FILE_NAME).exists():
            return []
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            return [(row[0], row[1]) for row in conn.execute("SELECT start, end FROM pending_windows ORDER BY start")]
        finally:
            conn.close()

    def remove(self, start: float, end: float) -> None:
        """Drop the window ``[start, end]`` after a completed run over it."""
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            with conn:
                conn.execute("DELETE FROM pending_windows WHERE start = ? AND end = ?", (start, end))
        finally:
            conn.close()
