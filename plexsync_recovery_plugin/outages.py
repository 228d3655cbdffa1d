"""The one source of outages: which outages exist, which are handled, and what they add up to.

An outage comes from PlexSync's circuit breaker (``outage_history.json``, read only; a
chain of breaker records is one outage) or from the watch daemon's own probes (kept in the
plugin's ``recovery_state.db``). ``OutageSource`` merges both for one data directory, gives
each outage a stable key, and remembers per outage which windows were recovered or left
pending, so every door (the daemon, the in-process follower, the Stash hook and tasks,
``recover --last-outage``, the ``outages`` report) asks one place and none runs an outage
twice. ``summarize_outages`` gives availability, MTTR and MTBF over them.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from .formatting import iso_time
from .state import PendingWindows, connect_state_db, read_state_rows

__all__ = ['SOURCE_PLEXSYNC', 'SOURCE_WATCH', 'Outage', 'merged_outages', 'plexsync_outages', 'union_of_outages', 'DetectedOutage', 'DetectedOutages', 'KEEP_ROWS', 'KEEP_HANDLED_ROWS', 'Baseline', 'CATCH_UP_DAYS', 'OUTAGE_ONGOING', 'OUTAGE_PENDING', 'OUTAGE_RECOVERED', 'OutageSource', 'check_catch_up_days', 'UnhandledWindow', 'uncovered_windows', 'OutageSummary', 'summarize_intervals', 'summarize_outages']


# ==== outages ===================================================================================
# Outages as they really happened, from the records that describe them.
#
# PlexSync's circuit breaker appends a new open record each time it reopens from half-open,
# and its ``record_outage_end`` closes only the newest open record. One real outage therefore
# reads ``[t1, open] [t2, open] [t3, t4]``: a run of open records followed by the one that was
# closed. Its recovery scheduler may then close the older open record too, so closed records
# can overlap. ``merged_outages`` turns any such list into the outages it means: each run of
# open records joins the closed record that follows it, overlapping outages are one, and only
# a run of open records at the very end is ongoing. Every reader goes through it, above all ``outage_source.OutageSource``, the one owner of
# "which outages exist and which are handled".
#
# An outage whose readings are out of order (the clock stepped back while it lasted: it ends
# before it starts) covers both readings, from the earlier to the later. Each outage has a
# stable identity (``Outage.key``): its source and the start of its first record.

#: Recorded by PlexSync's worker in ``outage_history.json``.
SOURCE_PLEXSYNC = "plexsync"
#: Detected by the ``watch`` daemon and kept in the plugin's ``recovery_state.db``.
SOURCE_WATCH = "watch"


@dataclass(frozen=True)
class Outage:
    """One outage (Unix seconds).

    Attributes:
        started_at: When it began: the earliest reading of its records.
        ended_at: When it ended (the latest reading); None while it is ongoing.
        jobs_affected: Sum of the records' ``jobs_affected``.
        source: ``SOURCE_PLEXSYNC`` or ``SOURCE_WATCH``.
        records: How many history records it merges.
        record_starts: Each merged record's ``started_at``, in the order they were recorded
            (its identity and aliases, see ``key``).
        clock_stepped: A reading is out of order (it ended before it started): the clock
            stepped back while it lasted, and it covers both readings.
        parts: The overlapping outages ``union_of_outages`` merged into this one (empty when
            it merged none). What is handled is judged part by part: a record closed inside an
            outage already handled (the clock had run ahead) is a new outage's.
    """

    started_at: float
    ended_at: float | None
    jobs_affected: int = 0
    source: str = SOURCE_PLEXSYNC
    records: int = 1
    record_starts: tuple[float, ...] = field(default=(), compare=False, repr=False)
    clock_stepped: bool = field(default=False, compare=False)
    parts: tuple["Outage", ...] = field(default=(), compare=False, repr=False)

    @property
    def ongoing(self) -> bool:
        """Whether it has not ended."""
        return self.ended_at is None

    @property
    def key(self) -> str:
        """Its stable identity: the source and the start of its first record (``plexsync:1771182000.0``)."""
        first = self.record_starts[0] if self.record_starts else self.started_at
        return f"{self.source}:{first!r}"

    def duration(self, now: float) -> float:
        """Seconds it lasted, or has lasted by ``now`` if ongoing; never negative."""
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.started_at)

    def as_dict(self, now: float) -> dict[str, Any]:
        """Plain data for JSON output: times in ISO-8601 UTC, as every JSON output of the plugin spells them."""
        return {
            "source": self.source,
            "started_at": iso_time(self.started_at),
            "ended_at": None if self.ended_at is None else iso_time(self.ended_at),
            "duration": self.duration(now),
            "ongoing": self.ongoing,
            "jobs_affected": self.jobs_affected,
            "records": self.records,
        }


def _jobs(record: dict[str, Any]) -> int:
    value = record.get("jobs_affected")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def merged_outages(records: Sequence[dict[str, Any]], source: str = SOURCE_PLEXSYNC) -> list[Outage]:
    """Turn history records (oldest first, as PlexSync writes them) into outages, oldest first.

    A closed run reaches from its earliest reading to its latest: an end before a start
    (the clock stepped back) widens the outage instead of emptying it.

    Args:
        records: ``{"started_at", "ended_at", ...}`` dicts with numeric times (``ended_at`` None while open).
        source: Label for the outages.

    Returns:
        The outages, none overlapping another; only the last can be ongoing.
    """
    outages: list[Outage] = []
    run: list[dict[str, Any]] = []  # open records waiting for the record that closes them
    for record in records:
        run.append(record)
        if record.get("ended_at") is None:
            continue
        starts = tuple(float(r["started_at"]) for r in run)
        end = float(record["ended_at"])
        outages.append(
            Outage(min(starts + (end,)), max(starts + (end,)), sum(_jobs(r) for r in run), source, len(run),
                   starts, clock_stepped=end < max(starts))
        )
        run = []
    if run:
        starts = tuple(float(r["started_at"]) for r in run)
        outages.append(Outage(min(starts), None, sum(_jobs(r) for r in run), source, len(run), starts))
    return union_of_outages(outages)


def union_of_outages(outages: Iterable[Outage]) -> list[Outage]:
    """Merge outages that overlap or touch into one, oldest first.

    A merged outage keeps the source of the first one when all share it, else ``"both"``.
    """
    merged: list[Outage] = []
    for outage in sorted(outages, key=lambda o: o.started_at):
        last = merged[-1] if merged else None
        if last is None or (last.ended_at is not None and outage.started_at > last.ended_at):
            merged.append(outage)
            continue
        ended = None if last.ended_at is None or outage.ended_at is None else max(last.ended_at, outage.ended_at)
        merged[-1] = replace(
            last,
            ended_at=ended,
            jobs_affected=last.jobs_affected + outage.jobs_affected,
            source=last.source if last.source == outage.source else "both",
            records=last.records + outage.records,
            record_starts=last.record_starts + outage.record_starts,
            clock_stepped=last.clock_stepped or outage.clock_stepped,
            parts=(last.parts or (last,)) + (outage.parts or (outage,)),
        )
    return merged


def plexsync_outages(data_dir: str | Path) -> list[Outage]:
    """PlexSync's outages from ``<data_dir>/outage_history.json`` (read only, never moved)."""
    from .worker.outage_history import HISTORY_FILE_NAME, read_history_file

    return merged_outages(read_history_file(Path(data_dir) / HISTORY_FILE_NAME))


# ==== detected outages ==========================================================================
# The outages the watch daemon detected, kept in the plugin's own ``recovery_state.db``.
#
# The daemon never writes PlexSync's ``outage_history.json``: PlexSync's worker keeps that
# history in memory and rewrites the whole file (a record another process adds is lost at its
# next write), and its circuit breaker records each outage itself. The daemon's own detections
# live here instead, one row per outage. Which of them were recovered is not kept here:
# ``outage_source.OutageSource`` answers that for every source, so an outage that ended while nobody
# could recover it (no ``dlq.db`` yet, a crash) is sent later, once. (The ``announced_at``
# column is what older versions used for that; ``OutageSource`` carries it over once.)

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


# ==== outage source =============================================================================
# The one source of outages: which outages exist, and which are handled.
#
# ``OutageSource`` answers for one data directory: PlexSync's outages (``outage_history.json``,
# read only, its records merged by ``outages.merged_outages``: a breaker chain is one outage)
# and the watch daemon's (``detected_outages``), and the windows recovered for each, kept in
# the plugin's ``recovery_state.db``. The watch daemon, the in-process follower, the Stash hook
# and tasks, ``recover --last-outage`` and the ``outages`` report all ask it.
#
# Handled is remembered per outage, never as a "newest end seen" mark: an outage recorded while
# the clock ran ahead must not hide a real later one. An outage is known by its source and the
# start of its first record (``Outage.key``); every record start it merges is kept with what
# was handled for it, so an outage whose oldest records drop off PlexSync's capped list is still
# the same outage, and a record closed inside an outage handled earlier is judged on its own.

logger = logging.getLogger(__name__)

#: Newest handled rows kept; older ones are dropped as new ones are written.
KEEP_HANDLED_ROWS = 2000


_HANDLED_ROWS = "SELECT source, record_start, started_at, ended_at FROM outage_handled"

#: What has become of an outage (``OutageSource.states``).
OUTAGE_ONGOING = "ongoing"
OUTAGE_PENDING = "pending"
OUTAGE_RECOVERED = "recovered"

_MARK = (
    "INSERT INTO outage_handled (source, record_start, started_at, ended_at, handled_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(source, record_start, started_at) DO UPDATE SET ended_at = max(ended_at, excluded.ended_at)"
)


#: Days back the first start in a data directory still recovers an ended outage (``--catch-up-days``, ``catch_up_days``).
CATCH_UP_DAYS = 7


def check_catch_up_days(value: Any) -> float:
    """``value`` as a number of catch-up days.

    Raises:
        ValueError: It is not a number of days, or it is negative (the message names it).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"catch-up days must be a number of days, 0 or more, got {value!r}")
    return float(value)


def _days(value: float) -> str:
    return f"{value:g} day" + ("" if value == 1 else "s")


def _outages(count: int) -> str:
    return f"{count} outage" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class Baseline:
    """What the first start in a data directory did with the outages already over.

    Attributes:
        taken: Whether it was taken now (False: an earlier start took it, nothing changed).
        catch_up: The outages left to recover: they ended within the catch-up days.
        noted: The older outages, noted as already handled.
        catch_up_days: The catch-up period it used.
    """

    taken: bool
    catch_up: tuple[Outage, ...] = ()
    noted: tuple[Outage, ...] = ()
    catch_up_days: float = 0.0

    def __str__(self) -> str:
        if not self.taken:
            return "an earlier start took note of the outages already over"
        if self.catch_up_days <= 0:
            said = f"catch-up is off; {_outages(len(self.noted))} already over noted as handled, not recovered"
        else:
            said = (f"catching up on {_outages(len(self.catch_up))} that ended in the last {_days(self.catch_up_days)};"
                    f" {_outages(len(self.noted))} older noted as handled, not recovered")
        return said + " (watch --catch-up-days, or catch_up_days in Stash's plugin settings, sets the period)"


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
                iso_time(self.start),
                iso_time(self.end),
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
            rows = conn.execute(_HANDLED_ROWS).fetchall()
        finally:
            conn.close()
        return [(str(s), float(r), float(a), float(b)) for s, r, a, b in rows]

    def unhandled(self) -> list[UnhandledWindow]:
        """The parts of closed outages no handled window covers, oldest first.

        An outage that grew (an older open record closed later) gives only its new seconds.
        """
        return _unhandled(self.closed(), self._handled_rows())

    def states(
        self, outages: Sequence[Outage] | None = None, pending: Sequence[tuple[float, float]] | None = None
    ) -> dict[str, str]:
        """What has become of each outage (of ``outages``, else every one), by ``Outage.key``.

        ``OUTAGE_ONGOING``: it has not ended. ``OUTAGE_PENDING``: part of it is not handled yet
        (the next door that polls recovers it), or a pending window (of ``pending``, else the
        data directory's) overlaps it: its recovery was deferred and is retried.
        ``OUTAGE_RECOVERED``: all of it was recovered. Reading creates no file.
        """
        outages = self.outages() if outages is None else list(outages)
        pending = PendingWindows(self.data_dir).windows() if pending is None else list(pending)
        rows = [(str(s), float(r), float(a), float(b))  # type: ignore[arg-type]
                for s, r, a, b in read_state_rows(self.data_dir, _HANDLED_ROWS)]
        unhandled = {window.outage.key for window in _unhandled(outages, rows)}
        states: dict[str, str] = {}
        for outage in outages:
            if outage.ended_at is None:
                states[outage.key] = OUTAGE_ONGOING
            elif outage.key in unhandled or any(_overlaps(outage, low, high) for low, high in pending):
                states[outage.key] = OUTAGE_PENDING
            else:
                states[outage.key] = OUTAGE_RECOVERED
        return states

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

    def take_baseline(self, catch_up_days: float = CATCH_UP_DAYS, now: float | None = None) -> Baseline:
        """The first time anything follows this data directory: leave recent outages to recover, note older ones.

        Outages that ended within the last ``catch_up_days`` days are left unhandled, so whoever
        follows the directory recovers them the usual way, through every gate (the live queue
        and the ledger skip what is queued already): someone who installs the plugin the day
        after an outage gets it back. Older ones are noted as handled: recovering every
        historical outage at once is not what anybody installing the plugin expects. ``0``
        notes them all. Later calls do nothing.

        Args:
            catch_up_days: How many days back an ended outage is still recovered.
            now: The current time (Unix seconds); ``time.time()`` when None.

        Raises:
            ValueError: ``catch_up_days`` is negative or not a number.
        """
        days = check_catch_up_days(catch_up_days)
        if self.baseline_taken():
            return Baseline(False)
        cutoff = (time.time() if now is None else now) - days * 86400.0
        closed = [o for o in self.closed() if o.ended_at is not None]
        recent = tuple(o for o in closed if days > 0 and o.ended_at is not None and o.ended_at >= cutoff)
        older = tuple(o for o in closed if o not in recent)
        if not self._mark([(o, o.started_at, o.ended_at) for o in older if o.ended_at is not None], baseline=True):
            return Baseline(False)
        baseline = Baseline(True, recent, older, days)
        if closed:
            logger.info("first start in %s: %s", self.data_dir, baseline)
        return baseline

    def baseline_taken(self) -> bool:
        """Whether ``take_baseline`` ran in this data directory (nothing is created)."""
        return bool(read_state_rows(self.data_dir, "SELECT 1 FROM follower_meta WHERE key = 'baseline'"))


def _unhandled(outages: Sequence[Outage], rows: list[tuple[str, float, float, float]]) -> list[UnhandledWindow]:
    """The parts of the closed ``outages`` no handled window (``rows``) covers, oldest first."""
    found: list[UnhandledWindow] = []
    for outage in outages:
        if outage.ended_at is None:
            continue
        needed = [
            gap
            for part in (outage.parts or (outage,))
            if part.ended_at is not None
            for gap in uncovered_windows(part.started_at, part.ended_at, _windows_for(part, rows))
        ]
        found.extend(UnhandledWindow(outage, start, end) for start, end in _joined(needed))
    return found


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


# ==== outage summary ============================================================================
# MTTR, MTBF and availability over outages: the figures ``outages`` and the Stash plugin's report show.

@dataclass(frozen=True)
class OutageSummary:
    """Figures over outages (seconds; None where they cannot be computed).

    Outages that overlap (PlexSync's records of one outage, or PlexSync and the watch daemon
    seeing the same one) count once, so downtime never exceeds the span.

    Attributes:
        count: Outages, after merging.
        ongoing: Whether the newest one is still open.
        mttr_seconds: Mean duration of the closed outages.
        mtbf_seconds: Mean time between the starts of consecutive outages (needs 2).
        span_seconds: From the first recorded start to ``now``.
        downtime_seconds: Total time inside outages up to ``now``.
        availability_percent: ``100 * (1 - downtime / span)``.
    """

    count: int
    ongoing: bool
    mttr_seconds: float | None
    mtbf_seconds: float | None
    span_seconds: float | None
    downtime_seconds: float
    availability_percent: float | None


def summarize_intervals(outages: Sequence[Outage], now: float) -> OutageSummary:
    """Compute MTTR, MTBF and availability of ``outages`` (any sources) as seen at ``now``."""
    merged = union_of_outages(outages)
    if not merged:
        return OutageSummary(0, False, None, None, None, 0.0, None)
    first = merged[0].started_at
    span = now - first
    # Clipped to [first start, now]: a clock that ran ahead cannot make downtime exceed the span.
    downtime = sum(max(0.0, min(o.ended_at if o.ended_at is not None else now, now) - o.started_at) for o in merged)
    closed = [o.duration(now) for o in merged if o.ended_at is not None]
    starts = [o.started_at for o in merged]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    return OutageSummary(
        count=len(merged),
        ongoing=merged[-1].ongoing,
        mttr_seconds=sum(closed) / len(closed) if closed else None,
        mtbf_seconds=sum(gaps) / len(gaps) if gaps else None,
        span_seconds=span if span > 0 else None,
        downtime_seconds=downtime,
        availability_percent=100.0 * (1.0 - min(downtime, span) / span) if span > 0 else None,
    )


def summarize_outages(records: Sequence[dict[str, Any]], now: float) -> OutageSummary:
    """Compute the figures of PlexSync history records (merged into outages first) at ``now``."""
    return summarize_intervals(merged_outages(records), now)
