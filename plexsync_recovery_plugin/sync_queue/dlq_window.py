"""The DLQ entries of one outage window, read page by page on PlexSync's own index.

Windows are Unix float seconds; ``failed_at`` is whatever was stored in a column of
NUMERIC affinity. PlexSync stores ``CURRENT_TIMESTAMP`` text (``"2026-02-15 19:17:49"``,
UTC); a hand edit or another tool may store ISO text with ``T``, ``Z``, ``+00:00`` or
fractional seconds, or a Unix number. Each entry's time is SQLite's normalized
``YYYY-MM-DD HH:MM:SS.SSS`` text of that value (numbers read as Unix seconds), and the
window is compared on it: windows are inclusive and exact to SQLite's millisecond.

The DLQ is read-only, so the query must do with PlexSync's index ``idx_failed_at`` on the
raw column, which orders numbers before text and text byte by byte. A window is therefore
read as one index range per stored form (``:mod:`.dlq_forms```): the space text, the ``T``
text and the numbers. Each range is paged in index order, re-sorted a whole second at a
time, and the ranges are merged by (time, id). Memory holds about one page per range.
A recovery reads the window by scene instead (``order="scene"``): SQLite sorts the
window's ids by scene, newest entry of each scene first, once, and the rows are then read
a page of ids at a time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
from array import array
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .dlq_forms import ENTRY_COLUMNS, FORMS, STORED_TIME_KEY, StoredForm, row_order
from .safe_pickle import MAX_PICKLE_BYTES

if TYPE_CHECKING:
    from .dlq import DeadLetterQueue

__all__ = [
    "DlqWindow",
    "FAILED_AT_INDEX",
    "STORED_TIME_KEY",
    "selected_milliseconds",
    "validate_window",
    "whole_seconds",
]

#: PlexSync's own index on ``dead_letters(failed_at)``: the one the window query seeks.
FAILED_AT_INDEX = "idx_failed_at"
_LAST_SECOND = 253402300799  # 9999-12-31 23:59:59, the last time SQLite's text can hold
_BOUND_KEY = "datetime(?, 'unixepoch') || printf('.%03d', ?)"
#: The keys of each entry, in the order of the statements' first columns.
#: How a window can be read: by failure time (``failed_at``, id) or by scene (scene id, time, id).
_ORDERS = ("time", "scene")
#: Ids bound in one ``IN (...)``: below the 999 variables of old SQLite builds.
_IDS_PER_STATEMENT = 500
_ENTRY_KEYS = ("id", "scene_id", "error_type", "error_message", "failed_at", "job_data", "job_data_size")


def validate_window(start: Any, end: Any) -> tuple[float, float]:
    """Check an outage window and return it as floats.

    Raises:
        ValueError: A bound is missing, not a number, NaN, infinite or negative, or
            ``start > end``; the message names the bad value.
    """
    bounds = []
    for name, value in (("start", start), ("end", end)):
        if value is None:
            raise ValueError(f"outage window {name} is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"outage window {name} must be Unix seconds, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"outage window {name} must be a finite number, got {value!r}")
        if number < 0:
            raise ValueError(f"outage window {name} must not be negative, got {value!r}")
        bounds.append(number)
    if bounds[0] > bounds[1]:
        raise ValueError(f"outage window start {start!r} is after its end {end!r}")
    return bounds[0], bounds[1]


def whole_seconds(start: float, end: float) -> tuple[float, float]:
    """Widen a window to whole seconds.

    PlexSync's ``failed_at`` is ``CURRENT_TIMESTAMP``, truncated to the second, so an entry
    that failed in an outage's first second reads as earlier than a fractional start.
    """
    return float(math.floor(start)), float(math.ceil(end))


def selected_milliseconds(start: float, end: float) -> tuple[int, int]:
    """The first and last millisecond (Unix ms) a window selects, rounded exactly (no float error)."""
    return _to_millis(start, ROUND_CEILING), _to_millis(end, ROUND_FLOOR)


def _to_millis(seconds: float, rounding: str) -> int:
    return int((Decimal(seconds) * 1000).to_integral_value(rounding=rounding))


def _second_and_millis(millis: int) -> tuple[int, int]:
    """Split Unix milliseconds into whole seconds and milliseconds, within SQLite's time range."""
    return divmod(max(0, min(millis, _LAST_SECOND * 1000 + 999)), 1000)


def _in_sql(param: str, count: int) -> str:
    """`` AND error_type IN (:{param}0, ...)``: ``count`` names bound as ``{param}<index>``."""
    return " AND error_type IN (" + ", ".join(f":{param}{index}" for index in range(count)) + ")"


def _merged(streams: list[Iterator[tuple[Any, ...]]]) -> Iterator[tuple[Any, ...]]:
    """The streams' rows merged by (time, id); a window stored in one form (PlexSync's) is not merged at all."""
    started = []
    for stream in streams:
        first = next(stream, None)
        if first is not None:
            started.append(itertools.chain((first,), stream))
    if len(started) == 1:
        return started[0]
    return heapq.merge(*started, key=row_order)


class DlqWindow(Sequence[dict[str, Any]]):
    """Entries with ``start <= failed_at <= end`` and ``error_type`` in ``error_types``.

    Oldest first (``failed_at``, then ``id``), or with ``order="scene"`` by scene id, and
    within a scene newest first (time, then id, descending): what a recovery reads, so that
    each chunk asks Stash about a narrow stretch of ids instead of all of them, and a
    scene's newest job is the one its first chunk re-queues. ``len()`` counts in SQL and iteration reads
    ``page_size`` rows at a time, so memory does not grow with the window.
    Blobs larger than ``max_job_bytes`` are not read: their ``job_data`` is None and
    ``job_data_size`` says why. Indexing loads everything; prefer iteration.
    ``stored_forms`` limits the read to some forms of ``failed_at`` (all by default; the
    benchmark times PlexSync's own form alone to price the others). ``by_message`` selects
    further among some of those types: ``{error_type: keep(error_message)}`` (the plugin's
    outage casualties); ``len()`` then counts those types per distinct message.

    Raises:
        ValueError: A bound is NaN, ``page_size`` is not a positive integer, or ``order``
            is neither ``"time"`` nor ``"scene"``.
    """

    def __init__(
        self,
        dlq: "DeadLetterQueue",
        start_time: float,
        end_time: float,
        error_types: Sequence[str],
        *,
        page_size: int = 1000,
        max_job_bytes: int = MAX_PICKLE_BYTES,
        stored_forms: Sequence[StoredForm] = FORMS,
        order: str = "time",
        by_message: Mapping[str, Callable[[Any], bool]] | None = None,
    ) -> None:
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {', '.join(_ORDERS)}, got {order!r}")
        self.order = order
        self.by_message = dict(by_message or {})
        self.dlq = dlq
        self.stored_forms = tuple(stored_forms)
        self.start_time = float(start_time)
        self.end_time = float(end_time)
        self.error_types = [str(name) for name in error_types]
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
        self.page_size = page_size
        self.max_job_bytes = max_job_bytes
        self._count: int | None = None
        if math.isnan(self.start_time) or math.isnan(self.end_time):
            raise ValueError(f"outage window bounds must be numbers, got {start_time!r} and {end_time!r}")

    @property
    def _empty(self) -> bool:
        return not self.error_types or self.start_time > self.end_time or self.end_time < 0

    def __len__(self) -> int:
        if self._count is None:
            self._count = 0 if self._empty else sum(
                count for (name, text), count in self._grouped(self._types_sql()) if self._selects(name, text))
        return self._count

    def left_by_error_type(self) -> dict[str, int]:
        """The window's entries of any type that this window does not select, by ``error_type``.

        One grouped count per stored form on PlexSync's index, read-only (as much as ``len()``).
        Rows without an ``error_type`` are not counted: nothing could select them.
        """
        if self.start_time > self.end_time or self.end_time < 0:
            return {}
        left: dict[str, int] = {}
        for (name, text), count in self._grouped(""):
            if name is not None and not self._selects(name, text):
                left[str(name)] = left.get(str(name), 0) + count
        return left

    def _selects(self, name: Any, message: Any) -> bool:
        """Whether an entry of this ``error_type`` and ``error_message`` is one this window reads."""
        if name not in self.error_types:
            return False
        keep = self.by_message.get(name)
        return keep is None or keep(message)

    def _grouped(self, types: str) -> Iterator[tuple[tuple[Any, Any], int]]:
        """``((error_type, message or None), count)`` of the window's rows of ``types`` (SQL), every stored form.

        Messages are grouped only for the types of ``by_message``.
        """
        judged = list(self.by_message)
        message = f"CASE WHEN 1{_in_sql('judged', len(judged))} THEN error_message END" if judged else "NULL"
        with self.dlq.reader() as conn:
            params = dict(self._params(conn), **{f"judged{index}": name for index, name in enumerate(judged)})
            for form in self.stored_forms:
                for name, text, count in conn.execute(form.grouped_count_sql(types, message), form.bounds(params)):
                    yield (name, text), int(count)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._empty:
            return
        with self.dlq.reader() as conn:
            params = self._params(conn)
            if self.order == "scene":
                rows = self._in_scene_order(conn, params)
            else:
                types = self._types_sql()
                rows = _merged([form.rows_in_time_order(conn, types, params) for form in self.stored_forms])
            judged = self.by_message
            for row in rows:
                keep = judged.get(row[2]) if judged else None  # by error_type
                if keep is None or keep(row[3]):  # error_message
                    yield dict(zip(_ENTRY_KEYS, row))

    def _in_scene_order(self, conn: sqlite3.Connection, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        """The window's rows by scene id, then newest first (time, id descending), a page at a time.

        SQLite sorts only ``(id, scene_id, time)`` of the window, and the sorted ids are kept
        in an array (8 bytes an entry). That first statement is finished before any row is
        read: PlexSync's DLQ keeps a rollback journal, so an open read would hold off its
        writes for the whole run. Each page of ids is then read by rowid in short statements;
        a row PlexSync deleted meanwhile is skipped.
        """
        types = self._types_sql()
        bounds = dict(params)
        for index, form in enumerate(self.stored_forms):
            form_bounds = form.bounds(params)
            bounds[f"lo{index}"], bounds[f"hi{index}"] = form_bounds["lo"], form_bounds["hi"]
        parts = [form.scene_order_sql(types, index) for index, form in enumerate(self.stored_forms)]
        ordered = array("q")
        cursor = conn.execute(f"SELECT id FROM ({' UNION ALL '.join(parts)}) ORDER BY scene_id, moment DESC, id DESC", bounds)
        try:
            while rows := cursor.fetchmany(self.page_size):
                ordered.extend(row[0] for row in rows)
        finally:
            cursor.close()
        columns = ENTRY_COLUMNS.replace(":max_bytes", str(int(self.max_job_bytes)))  # the ids are bound by position
        select = f"SELECT {columns} FROM dead_letters WHERE id IN "
        for offset in range(0, len(ordered), self.page_size):
            ids = ordered[offset : offset + self.page_size].tolist()
            found: dict[int, tuple[Any, ...]] = {}
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                part = ids[start : start + _IDS_PER_STATEMENT]
                found.update((row[0], row) for row in conn.execute(f"{select}({', '.join('?' * len(part))})", part))
            yield from (found[row_id] for row_id in ids if row_id in found)

    def _params(self, conn: sqlite3.Connection) -> dict[str, Any]:
        """Named parameters shared by every statement: the exact keys, the seconds, the types."""
        low, high = (_second_and_millis(millis) for millis in selected_milliseconds(self.start_time, self.end_time))
        low_key, high_key = conn.execute(f"SELECT {_BOUND_KEY}, {_BOUND_KEY}", (*low, *high)).fetchone()
        params: dict[str, Any] = {"low": low_key, "high": high_key, "max_bytes": self.max_job_bytes,
                                  "limit": self.page_size,
                                  # a value may round up by half a millisecond into the next second
                                  "low_second": max(0, low[0] - 1), "high_second": high[0]}
        params.update((f"type{index}", name) for index, name in enumerate(self.error_types))
        return params

    def _types_sql(self) -> str:
        return _in_sql("type", len(self.error_types))

    def query_plan(self) -> dict[str, list[str]]:
        """``EXPLAIN QUERY PLAN`` of each statement, by ``<form>.<statement>``.

        ``page``, ``same_value`` and ``count`` should each be one ``SEARCH ... USING INDEX
        idx_failed_at`` without a temporary B-tree; ``sorted_second`` (a second stored in
        several spellings and filling a page) sorts that one second.
        """
        plans: dict[str, list[str]] = {}
        types = self._types_sql()
        with self.dlq.reader() as conn:
            params = self._params(conn)
            for form in self.stored_forms:
                bounds = dict(form.bounds(params), next=form.first_value(params["high_second"]),
                              raw=form.first_value(params["low_second"]), after_id=0, after_key="")
                for name, sql in form.statements(types).items():
                    plans[f"{form.name}.{name}"] = [str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, bounds)]
        return plans

    def __getitem__(self, index: Any) -> Any:
        return list(self)[index]
