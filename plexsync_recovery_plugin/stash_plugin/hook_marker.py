"""The Stash hook's "last checked" marker, a small table in the plugin's own ``recovery_state.db``.

It remembers what the hook saw of PlexSync's ``outage_history.json`` (its stat signature)
and when it last retried pending windows, so a scene update finds out that nothing is new
from a ``stat`` and one small read. Which outages are handled is not kept here but per
outage, by ``worker.outage_source.OutageSource``: a "newest end seen" mark would hide a real
outage that ends before one recorded while the clock ran ahead. Nothing of PlexSync's is
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..state import STATE_FILE_NAME, connect_state_db

__all__ = ["HookMarker", "Marker"]

_KEY = "last_check"


@dataclass(frozen=True)
class Marker:
    """What the hook had seen at its last check.

    Attributes:
        history_signature: ``inode:mtime_ns:size`` of the history file, or None when it was absent.
        retried_at: When pending windows were last looked at for a retry (Unix seconds).
    """

    history_signature: str | None
    retried_at: float


class HookMarker:
    """Reads and writes the marker of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def read(self) -> Marker | None:
        """Return the marker, or None before the hook's first check (the state file is not created)."""
        if not (self.data_dir / STATE_FILE_NAME).exists():
            return None
        conn = connect_state_db(self.data_dir)
        try:
            row = conn.execute("SELECT value FROM stash_hook_marker WHERE key = ?", (_KEY,)).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            return Marker(data["history_signature"], float(data["retried_at"]))
        except (ValueError, KeyError, TypeError):  # unreadable: start again from a baseline
            return None

    def write(self, marker: Marker) -> None:
        """Replace the marker."""
        value = json.dumps(
            {
                "history_signature": marker.history_signature,
                "retried_at": marker.retried_at,
            }
        )
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO stash_hook_marker (key, value) VALUES (?, ?)", (_KEY, value))
        finally:
            conn.close()
