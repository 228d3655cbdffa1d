"""The plugin's own small SQLite file, ``<data_dir>/recovery_state.db``.

It holds what the plugin must remember across restarts (pending windows, outages already
handled) and nothing of PlexSync's, so PlexSync's files stay as PlexSync wrote them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["STATE_FILE_NAME", "connect_state_db"]

STATE_FILE_NAME = "recovery_state.db"


def connect_state_db(data_dir: str | Path, schema: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the state file, creating ``schema`` (idempotent SQL) if needed; the caller closes it."""
    path = Path(data_dir) / STATE_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout)
    with conn:
        conn.executescript(schema)
    return conn
