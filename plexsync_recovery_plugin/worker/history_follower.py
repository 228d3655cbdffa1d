"""Following the outage history a PlexSync worker writes in the same data directory.

The records are read as the outages they mean (``outages.merged_outages``): a run of open
records closed by a later one is one outage from the first of them. When an outage there is
closed, ``outage_ended`` is sent once for it. What was sent is kept in the plugin's state file
as windows, in the whole seconds PlexSync dates its DLQ entries with, so a restart never sends
an outage again, and an outage that later grows (PlexSync closing an older open record after
a newer one) sends only the seconds no earlier window covered.

The first time it runs in a data directory (``start``) it only takes note of the outages
already over: recovering every historical outage at once is not what anybody installing it
expects. The file is only read, never moved or rewritten.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from ..signals import outage_ended, send_isolated
from ..state_db import connect_state_db
from .outage_history import HISTORY_FILE_NAME, read_history_file
from .outages import Outage, iso_utc, merged_outages

__all__ = ["HistoryFollower", "uncovered_windows"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled_outages (
    started_at REAL PRIMARY KEY,
    ended_at REAL NOT NULL,
    handled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS follower_meta (key TEXT PRIMARY KEY, value TEXT);
"""

_MARK = (
    "INSERT INTO handled_outages (started_at, ended_at, handled_at) VALUES (?, ?, ?)"
    " ON CONFLICT(started_at) DO UPDATE SET ended_at = max(ended_at, excluded.ended_at)"
)


def uncovered_windows(start: float, end: float, handled: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of ``[start, end]`` whose DLQ seconds no handled window selected.

    A DLQ entry that failed inside ``[start, end]`` carries a whole second from
    ``floor(start)`` to ``floor(end)``; a handled window ``[a, b]`` was recovered over
    ``floor(a)`` .. ``ceil(b)``. The uncovered seconds come back as windows; a window that
    reaches the outage's own first or last second keeps its exact start or end.
    """
    need_low, need_high = math.floor(start), math.floor(end)
    cursor, gaps = need_low, []
    for low, high in sorted((math.floor(a), math.ceil(b)) for a, b in handled):
        if cursor > need_high or low > need_high:
            break
        if high < cursor:
            continue
        if low > cursor:
            gaps.append((cursor, low - 1))
        cursor = max(cursor, high + 1)
    if cursor <= need_high:
        gaps.append((cursor, need_high))
    return [
        (start if low == need_low else float(low), end if high == need_high else float(high)) for low, high in gaps
    ]


class HistoryFollower:
    """Sends ``outage_ended`` for outages another process closed in ``outage_history.json``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / HISTORY_FILE_NAME
        self._last_seen: tuple[int, int, int] | None = None

    def _closed_outages(self) -> list[Outage]:
        return [outage for outage in merged_outages(read_history_file(self.path)) if outage.ended_at is not None]

    def _handled(self) -> list[tuple[float, float]]:
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            return [(float(a), float(b)) for a, b in conn.execute("SELECT started_at, ended_at FROM handled_outages")]
        finally:
            conn.close()

    def mark_handled(self, started_at: float, ended_at: float) -> None:
        """Remember that the window ``[started_at, ended_at]`` was handled (by us or anyone)."""
        conn = connect_state_db(self.data_dir, _SCHEMA)
        try:
            with conn:
                conn.execute(_MARK, (float(started_at), float(ended_at), time.time()))
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
                past = self._closed_outages()
                now = time.time()
                conn.executemany(_MARK, [(o.started_at, o.ended_at, now) for o in past])
                conn.execute("INSERT INTO follower_meta (key, value) VALUES ('baseline', ?)", (str(now),))
        finally:
            conn.close()
        if past:
            logger.info("first run in %s: %d past outages noted as already handled", self.data_dir, len(past))

    def poll(self) -> list[tuple[float, float]]:
        """Send ``outage_ended`` for each newly closed outage (or its new part); return the windows sent."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._last_seen:
            return []
        closed = self._closed_outages()
        handled = self._handled()
        self._last_seen = signature
        sent: list[tuple[float, float]] = []
        for outage in closed:
            assert outage.ended_at is not None
            for start, end in uncovered_windows(outage.started_at, outage.ended_at, handled):
                logger.info(
                    "outage %s..%s was closed by PlexSync (%d history records)",
                    iso_utc(start),
                    iso_utc(end),
                    outage.records,
                )
                send_isolated(outage_ended, self, start=start, end=end)
                # Marked after sending: a crash in between re-sends, and recovery is idempotent.
                self.mark_handled(start, end)
                handled.append((start, end))
                sent.append((start, end))
        return sent
