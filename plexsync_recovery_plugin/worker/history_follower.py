"""Following an outage history written by another process (a PlexSync worker in the same data dir).

When a record there gains an ``ended_at``, ``outage_ended`` is sent once for it. Which
records were handled is kept in the plugin's state file, so a restart never sends one again.
The first time it runs in a data directory (``start``) it only takes note of the outages
already over: recovering every historical outage at once is not what anybody installing it
expects.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..signals import outage_ended, send_isolated
from ..state_db import connect_state_db
from .outage_history import HISTORY_FILE_NAME, read_history_file

__all__ = ["HistoryFollower"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled_outages (
    started_at REAL PRIMARY KEY,
    ended_at REAL NOT NULL,
    handled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS follower_meta (key TEXT PRIMARY KEY, value TEXT);
"""


class HistoryFollower:
    """Sends ``outage_ended`` for outages another process closed in ``outage_history.json``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / HISTORY_FILE_NAME
        self._last_seen: tuple[float, int] | None = None

    def mark_handled(self, started_at: float, ended_at: float) -> None:
        """Remember that the outage starting at ``started_at`` was handled (by us or anyone)."""
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            with conn:
                conn.execute(
                    "INSERT OR IGNORE INTO handled_outages (started_at, ended_at, handled_at) VALUES (?, ?, ?)",
                    (float(started_at), float(ended_at), time.time()),
                )
        finally:
            conn.close()

    def start(self) -> None:
        """Take the baseline the first time this data directory is followed; later calls do nothing.

        Outages already over then are noted as handled without being sent.
        """
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            with conn:
                if conn.execute("SELECT 1 FROM follower_meta WHERE key = 'baseline'").fetchone() is not None:
                    return
                past = [record for record in read_history_file(self.path) if record.get("ended_at") is not None]
                conn.executemany(
                    "INSERT OR IGNORE INTO handled_outages (started_at, ended_at, handled_at) VALUES (?, ?, ?)",
                    [(float(r["started_at"]), float(r["ended_at"]), time.time()) for r in past],
                )
                conn.execute("INSERT INTO follower_meta (key, value) VALUES ('baseline', ?)", (str(time.time()),))
        finally:
            conn.close()
        if past:
            logger.info("first run in %s: %d past outages noted as already handled", self.data_dir, len(past))

    def poll(self) -> list[dict[str, Any]]:
        """Send ``outage_ended`` for each newly closed outage; return those records."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._last_seen:
            return []
        ended = [record for record in read_history_file(self.path) if record.get("ended_at") is not None]
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            handled = {row[0] for row in conn.execute("SELECT started_at FROM handled_outages")}
        finally:
            conn.close()
        self._last_seen = signature
        fresh = [record for record in ended if float(record["started_at"]) not in handled]
        for record in fresh:
            logger.info("outage %s..%s was closed by another process", record["started_at"], record["ended_at"])
            send_isolated(outage_ended, self, start=float(record["started_at"]), end=float(record["ended_at"]))
            # Marked after sending: a crash in between re-sends, and recovery is idempotent.
            self.mark_handled(record["started_at"], record["ended_at"])
        return fresh
