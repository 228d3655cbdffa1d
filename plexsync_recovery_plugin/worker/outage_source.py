"""The one source of outages: which outages exist, and which are handled.

``OutageSource`` answers for one data directory: PlexSync's outages (``outage_history.json``,
read only, its records merged by ``outages.merged_outages``: a breaker chain is one outage)
and the watch daemon's (``detected_outages``), and the windows recovered for each, kept in
the plugin's ``recovery_state.db``. The watch daemon, the in-process follower, the Stash hook
and tasks, ``recover --last-outage`` and the ``outages`` report all ask it.

Handled is remembered per outage, never as a "newest end seen" mark: an outage recorded while
the clock ran ahead must not hide a real later one. An outage is known by its source and the
start of its first record (``Outage.key``); every record start it merges is kept with what
was handled for it, so an outage whose oldest records drop off PlexSync's capped list is still
the same outage, and a record closed inside an outage handled earlier is judged on its own.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..state import connect_state_db, read_state_rows
from .outages import SOURCE_WATCH, Outage, iso_utc, plexsync_outages

__all__ = ["KEEP_HANDLED_ROWS", "OutageSource", "UnhandledWindow", "uncovered_windows"]

logger = logging.getLogger(__name__)

#: Newest handled rows kept; older ones are dropped as new ones are written.
KEEP_HANDLED_ROWS = 2000


_MARK = (
    "INSERT INTO outage_handled (source, record_start, started_at, ended_at, handled_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(source, record_start, started_at) DO UPDATE SET ended_at = max(ended_at, excluded.ended_at)"
)


@dataclass(frozen=True)
class UnhandledWindow:
    """The part of a closed outage no handled window covers yet.

    Attributes:
        outage: The outage.
        start: Start of the part to recover (Unix seconds).
        end: Its end.
    """

    outage: Outage
    start: float
    end: float

    def warn_if_clock_stepped(self) -> None:
        """Say (once: before it is handled) that the outage's readings are out of order, if they are."""
        if self.outage.clock_stepped:
            logger.warning(
                "outage %s..%s: its readings are out of order (the clock stepped back while it lasted);"
                " recovering from the earliest to the latest of them",
                iso_utc(self.start),
                iso_utc(self.end),
            )


def _overlaps(outage: Outage, start: float, end: float) -> bool:
    assert outage.ended_at is not None
    return outage.started_at <= end and start <= outage.ended_at


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


class OutageSource:
    """The outages of one data directory, from PlexSync and the watch daemon, and which are handled.

    Reading never writes PlexSync's files; ``outages`` and ``last_closed`` do not even create
    the plugin's state file. Handled windows are kept per outage (its identity and every
    record start it merges), so what one outage recovered never hides another outage.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def __repr__(self) -> str:
        return f"OutageSource({str(self.data_dir)!r})"

    def outages(self) -> list[Outage]:
        """Every outage of both sources (PlexSync's merged), by start; nothing is created."""
        from .detected_outages import DetectedOutages

        both = plexsync_outages(self.data_dir) + DetectedOutages(self.data_dir).outages()
        return sorted(both, key=lambda o: (o.started_at, o.source))

    def closed(self) -> list[Outage]:
        """The outages that have ended, by start."""
        return [outage for outage in self.outages() if outage.ended_at is not None]

    def last_closed(self) -> Outage | None:
        """The closed outage that ended last (by its latest reading), or None."""
        closed = self.closed()
        return max(closed, key=lambda o: (o.ended_at, o.started_at)) if closed else None

    def last_closed_window(self) -> tuple[float, float] | None:
        """``(start, end)`` of ``last_closed`` (what ``recover --last-outage`` recovers), or None."""
        outage = self.last_closed()
        return None if outage is None or outage.ended_at is None else (outage.started_at, outage.ended_at)

    def _connect(self) -> sqlite3.Connection:
        return connect_state_db(self.data_dir)

    def _handled_rows(self) -> list[tuple[str, float, float, float]]:
        conn = self._connect()
        try:
            rows = conn.execute("SELECT source, record_start, started_at, ended_at FROM outage_handled").fetchall()
        finally:
            conn.close()
        return [(str(s), float(r), float(a), float(b)) for s, r, a, b in rows]

    def unhandled(self) -> list[UnhandledWindow]:
        """The parts of closed outages no handled window covers, oldest first.

        An outage that grew (an older open record closed later) gives only its new seconds.
        """
        rows = self._handled_rows()
        found: list[UnhandledWindow] = []
        for outage in self.closed():
            needed = [
                gap
                for part in (outage.parts or (outage,))
                if part.ended_at is not None
                for gap in uncovered_windows(part.started_at, part.ended_at, _windows_for(part, rows))
            ]
            found.extend(UnhandledWindow(outage, start, end) for start, end in _joined(needed))
        return found

    def mark_handled(self, start: float, end: float, outage: Outage | None = None) -> None:
        """Note that ``[start, end]`` was recovered (or kept pending) now.

        It is noted for ``outage`` and for every closed outage known now that it overlaps:
        their entries in those seconds were all taken in this run.
        """
        low, high = min(float(start), float(end)), max(float(start), float(end))
        outages = [o for o in self.closed() if _overlaps(o, low, high)]
        if outage is not None:
            outages.append(outage)
        self._mark([(o, low, high) for o in outages])

    def _mark(self, marks: list[tuple[Outage, float, float]], *, baseline: bool = False) -> bool:
        """Write ``marks`` in one transaction; with ``baseline``, only if no baseline was taken (then note it)."""
        now = time.time()
        rows = [
            (outage.source, record_start, start, end, now)
            for outage, start, end in marks
            for record_start in (outage.record_starts or (outage.started_at,))
        ]
        if not rows and not baseline:
            return True
        conn = self._connect()
        try:
            with conn:
                if baseline:
                    if conn.execute("SELECT 1 FROM follower_meta WHERE key = 'baseline'").fetchone() is not None:
                        return False
                    conn.execute("INSERT INTO follower_meta (key, value) VALUES ('baseline', ?)", (str(now),))
                conn.executemany(_MARK, rows)
                conn.execute(
                    "DELETE FROM outage_handled WHERE rowid <= (SELECT MAX(rowid) FROM outage_handled) - ?",
                    (KEEP_HANDLED_ROWS,),
                )
        finally:
            conn.close()
        return True

    def take_baseline(self) -> bool:
        """The first time anything follows this data directory, note every closed outage as handled.

        Recovering every historical outage at once is not what anybody installing the plugin
        expects. Later calls do nothing.

        Returns:
            Whether the baseline was taken now.
        """
        if self.baseline_taken():
            return False
        past = [o for o in self.closed() if o.ended_at is not None]
        if not self._mark([(o, o.started_at, o.ended_at) for o in past if o.ended_at is not None], baseline=True):
            return False
        if past:
            logger.info("first run in %s: %d past outages noted as already handled", self.data_dir, len(past))
        return True

    def baseline_taken(self) -> bool:
        """Whether ``take_baseline`` ran in this data directory (nothing is created)."""
        return bool(read_state_rows(self.data_dir, "SELECT 1 FROM follower_meta WHERE key = 'baseline'"))


def _joined(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Windows that overlap or touch in the DLQ's whole seconds joined into one, by start."""
    joined: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if joined and math.floor(start) <= math.floor(joined[-1][1]) + 1:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def _windows_for(outage: Outage, rows: list[tuple[str, float, float, float]]) -> list[tuple[float, float]]:
    starts = set(outage.record_starts or (outage.started_at,))
    return [(a, b) for source, record_start, a, b in rows if source == outage.source and record_start in starts]
