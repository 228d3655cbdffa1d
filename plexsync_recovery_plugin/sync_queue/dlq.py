"""PlexSync's dead-letter queue, read-only: the ``dlq.db`` file, its rows as entries, and the windows a recovery reads.

``DeadLetterQueue`` is the one owner of ``dlq.db``. It opens the file read-only (SQLite
``mode=ro``) and leaves no new file behind; PlexSync alone writes it. Each row's pickled job
is decoded only by ``decode`` (never ``pickle.loads``), and a window of rows (time span,
error types, by scene, in pages) is made in one place, ``DeadLetterQueue.window``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import sqlite3
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

from ..decode import MAX_PICKLE_BYTES, UnsafePickleError, safe_loads
from ..sqlite_uri import leave_no_new_files, sqlite_uri

__all__ = ['ENTRY_COLUMNS', 'FORMS', 'KEY', 'RAW', 'SECOND', 'STORED_TIME_KEY', 'StoredForm', 'group_order', 'row_order', 'CorruptEntryError', 'DecodedJob', 'MAX_SCENE_ID', 'decode_entry_job', 'entry_scene_id', 'failed_at_seconds', 'DlqWindow', 'FAILED_AT_INDEX', 'selected_milliseconds', 'validate_window', 'whole_seconds', 'DEFAULT_AGES', 'DLQ_FILE_NAME', 'DeadLetterQueue', 'DlqUnavailable']


# ==== dlq forms =================================================================================
# The stored forms of ``dead_letters.failed_at`` and the window query's SQL for each.
#
# ``failed_at`` has NUMERIC affinity and PlexSync's index ``idx_failed_at`` orders it raw:
# numbers first (by value), then text byte by byte. Each form below is one contiguous,
# ordered range of that index for a window:
#
# * ``space``: ``YYYY-MM-DD HH:MM:SS`` (PlexSync's ``CURRENT_TIMESTAMP``), with or without
#   fractional seconds, ``Z`` or ``+00:00``;
# * ``t``: the same with ``T`` between date and time;
# * ``number``: Unix seconds stored as an integer or a real.
#
# Within a form, index order is time order from one whole second to the next, but not
# inside a second (``"...:49.5"`` sorts before ``"...:49Z"``, and ``".5"``/``".50"`` are one
# time): ``StoredForm.rows_in_time_order`` re-sorts a second at a time. A time with a non-zero UTC offset,
# without seconds, or a date alone is not in any range and is not selected.

_TEXT_KEY = "strftime('%Y-%m-%d %H:%M:%f', failed_at)"
_NUMBER_KEY = "strftime('%Y-%m-%d %H:%M:%f', failed_at, 'unixepoch')"
#: ``failed_at`` of any stored form as normalized text (NULL when it is not a time).
STORED_TIME_KEY = f"CASE WHEN typeof(failed_at) IN ('integer', 'real') THEN {_NUMBER_KEY} ELSE {_TEXT_KEY} END"
#: Above every character a time's text may hold: closes a range on a second's last spelling.
_TEXT_END = "\x7f"

#: Column positions in every selected row: the stored value, its normalized time, its second.
RAW, KEY, SECOND = 4, 7, 8
#: The entry's own columns (the first seven of every selected row); ``:max_bytes`` caps ``job_data``.
ENTRY_COLUMNS = (
    "id, scene_id, error_type, error_message, failed_at,"
    " CASE WHEN length(job_data) <= :max_bytes THEN job_data END, length(job_data)"
)


#: A row's DLQ id, its first column (an ``itemgetter``, as it runs once a row).
_row_id: Callable[[tuple[Any, ...]], int] = itemgetter(0)
#: A selected row's place in a window: (normalized time, id). An ``itemgetter``: it runs once a row.
row_order: Callable[[tuple[Any, ...]], tuple[str, int]] = itemgetter(KEY, 0)
#: Sort key inside a page: index second first, then (time, id).
group_order: Callable[[tuple[Any, ...]], tuple[int, str, int]] = itemgetter(SECOND, KEY, 0)


@dataclass(frozen=True)
class StoredForm:
    """One stored form of ``failed_at``: its index range and its statements.

    Attributes:
        name: ``space``, ``t`` or ``number``.
        separator: The character between date and time (text forms), or None for numbers.
    """

    name: str
    separator: str | None

    @property
    def key(self) -> str:
        """SQL: the row's time as ``YYYY-MM-DD HH:MM:SS.SSS``."""
        return _TEXT_KEY if self.separator else _NUMBER_KEY

    @property
    def second(self) -> str:
        """SQL: the whole Unix second the stored value is filed under in the index."""
        if self.separator is None:
            return "CAST(failed_at AS INTEGER)"
        return f"COALESCE(CAST(strftime('%s', substr(failed_at, 1, 19)) AS INTEGER), CAST(strftime('%s', {self.key}) AS INTEGER))"

    def first_value(self, unix_second: int) -> Any:
        """The lowest stored value of this form within ``unix_second``."""
        if self.separator is None:
            return unix_second
        return time.strftime(f"%Y-%m-%d{self.separator}%H:%M:%S", time.gmtime(unix_second))

    def last_value(self, unix_second: int) -> Any:
        """A value above every stored value of this form within ``unix_second`` (inclusive bound)."""
        if self.separator is None:
            return unix_second + 1
        return self.first_value(unix_second) + _TEXT_END

    def bounds(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with this form's range ``lo``..``hi`` for the window's seconds."""
        return dict(params, lo=self.first_value(params["low_second"]), hi=self.last_value(params["high_second"]))

    def _where(self, types: str) -> str:
        own = f" AND substr(failed_at, 11, 1) = '{self.separator}'" if self.separator else ""
        return f"{self.key} >= :low AND {self.key} <= :high{own}{types}"

    def _select(self) -> str:
        return f"SELECT {ENTRY_COLUMNS}, {self.key}, {self.second} FROM dead_letters WHERE "

    def page_sql(self, types: str) -> str:
        """A page of the range from ``lo``, in index order (``failed_at``, then id)."""
        return (f"{self._select()}failed_at >= :lo AND failed_at <= :hi AND {self._where(types)}"
                " ORDER BY failed_at, id LIMIT :limit")

    def scene_order_sql(self, index: int) -> str:
        """``(id, scene_id, error_type, time)`` of every row in this range, its bounds named ``lo{index}``/``hi{index}``.

        One part of a ``UNION ALL`` over the forms that reads a window in scene order; the
        time is computed here once a row and compared with the window's bounds outside (see
        ``DlqWindow._in_scene_order``), and every ``error_type`` is read.
        """
        own = f" AND substr(failed_at, 11, 1) = '{self.separator}'" if self.separator else ""
        return (f"SELECT id, scene_id, error_type, {self.key} AS moment FROM dead_letters"
                f" WHERE failed_at >= :lo{index} AND failed_at <= :hi{index}{own}")

    def count_sql(self, types: str) -> str:
        """How many rows of the window this range holds."""
        return f"SELECT COUNT(*) FROM dead_letters WHERE failed_at >= :lo AND failed_at <= :hi AND {self._where(types)}"

    def grouped_count_sql(self, types: str, message: str) -> str:
        """How many rows of the window this range holds per ``(error_type, message)``, ``message`` an SQL expression."""
        return (f"SELECT error_type, {message}, COUNT(*) FROM dead_letters"
                f" WHERE failed_at >= :lo AND failed_at <= :hi AND {self._where(types)} GROUP BY 1, 2")

    def same_value_sql(self, types: str) -> str:
        """The next rows stored with exactly ``raw``, after ``after_id``, by id."""
        return f"{self._select()}failed_at = :raw AND id > :after_id AND {self._where(types)} ORDER BY id LIMIT :limit"

    def other_value_sql(self, types: str) -> str:
        """Whether a row of the window follows ``raw`` within its second (before ``next``)."""
        return f"SELECT 1 FROM dead_letters WHERE failed_at > :raw AND failed_at < :next AND {self._where(types)} LIMIT 1"

    def sorted_second_sql(self, types: str) -> str:
        """A page of one second (``lo``..``next``) after (``after_key``, ``after_id``), sorted by SQLite."""
        return (f"{self._select()}failed_at >= :lo AND failed_at < :next AND {self._where(types)}"
                f" AND ({self.key} > :after_key OR ({self.key} = :after_key AND id > :after_id))"
                f" ORDER BY {self.key}, id LIMIT :limit")

    def rows_in_time_order(self, conn: sqlite3.Connection, types: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        """This range's rows of the window, ordered by (second, time, id), ``params["limit"]`` rows a page.

        A page in index order is cut after its last complete second (the rest is read
        again from that second on) and sorted: spellings of one second (``.5`` before
        ``Z``) sort by text, not by time. A second filling a whole page is read alone.
        """
        bounds = self.bounds(params)
        while True:
            rows = conn.execute(self.page_sql(types), bounds).fetchall()
            if len(rows) < params["limit"]:
                yield from sorted(rows, key=group_order)
                return
            last_second = rows[-1][SECOND]
            cut = next(index for index, row in enumerate(rows) if row[SECOND] == last_second)
            if cut:
                yield from sorted(rows[:cut], key=group_order)
                bounds["lo"] = rows[cut][RAW]  # the first stored value of the unfinished second
                continue
            yield from self._one_second(conn, types, dict(bounds, next=self.first_value(last_second + 1)), rows)
            bounds["lo"] = self.first_value(last_second + 1)

    def _one_second(
        self, conn: sqlite3.Connection, types: str, bounds: dict[str, Any], first_page: list[tuple[Any, ...]]
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of one second that fills a page: by id when stored in one spelling, else sorted in SQL."""
        raw = first_page[0][RAW]
        uniform = all(row[RAW] == raw for row in first_page)
        if uniform and not conn.execute(self.other_value_sql(types), dict(bounds, raw=raw)).fetchone():
            yield from first_page  # one stored value: one time, rows already in id order
            params = dict(bounds, raw=raw, after_id=first_page[-1][0])
            while rows := conn.execute(self.same_value_sql(types), params).fetchall():
                yield from rows
                params["after_id"] = rows[-1][0]
            return
        params = dict(bounds, after_key="", after_id=0)  # several spellings: SQLite sorts this second per page
        while rows := conn.execute(self.sorted_second_sql(types), params).fetchall():
            yield from rows
            params["after_key"], params["after_id"] = row_order(rows[-1])

    def statements(self, types: str) -> dict[str, str]:
        """Every statement of this form, by name (for ``EXPLAIN QUERY PLAN``)."""
        return {
            "page": self.page_sql(types),
            "count": self.count_sql(types),
            "same_value": self.same_value_sql(types),
            "other_value": self.other_value_sql(types),
            "sorted_second": self.sorted_second_sql(types),
        }


#: The forms, each one index range; PlexSync's own first.
FORMS = (StoredForm("space", " "), StoredForm("t", "T"), StoredForm("number", None))


# ==== dlq entry =================================================================================
# Reading one DLQ entry safely: its scene id and its job, or a clear reason it is corrupt.

class CorruptEntryError(ValueError):
    """A DLQ entry cannot be turned back into a job; the message says why."""


class DecodedJob(NamedTuple):
    """The parts of a job that recovery re-queues."""

    scene_id: int
    update_type: str
    data: Any


#: The largest id SQLite (a signed 64-bit INTEGER) and Stash (its ids are SQLite row ids) can hold.
MAX_SCENE_ID = 2**63 - 1


def _valid_scene_id(value: Any, where: str) -> int:
    """``value`` if it is a scene id SQLite and Stash can hold: checked before anything is asked or written."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CorruptEntryError(f"{where} scene_id must be a positive integer, got {value!r}")
    if value > MAX_SCENE_ID:
        raise CorruptEntryError(f"{where} scene_id {value} is larger than any id SQLite and Stash can hold ({MAX_SCENE_ID})")
    return value


def entry_scene_id(entry: Mapping[str, Any]) -> int | None:
    """Return the entry's ``scene_id`` column, or None when it is NULL (the job then decides).

    Raises:
        CorruptEntryError: The column holds something other than a positive integer.
    """
    value = entry.get("scene_id")
    return None if value is None else _valid_scene_id(value, "DLQ column")


def decode_entry_job(entry: Mapping[str, Any]) -> DecodedJob:
    """Decode the entry's pickled job without running any code.

    Raises:
        CorruptEntryError: ``job_data`` is missing, too large, not a safe pickle, not a
            job dict, lacks ``scene_id`` or ``update_type``, or names another scene than
            the entry's ``scene_id`` column.
    """
    blob = entry.get("job_data")
    if blob is None:
        size = entry.get("job_data_size")
        if size:
            raise CorruptEntryError(f"job_data is {size} bytes, too large to be a job")
        raise CorruptEntryError("job_data is empty")
    try:
        job = safe_loads(blob)
    except UnsafePickleError as error:
        raise CorruptEntryError(f"job_data refused: {error}") from None
    if not isinstance(job, dict):
        raise CorruptEntryError(f"job_data holds a {type(job).__name__}, not a job dict")
    if "scene_id" not in job or "update_type" not in job:
        missing = [key for key in ("scene_id", "update_type") if key not in job]
        raise CorruptEntryError(f"job_data has no {' or '.join(missing)}")
    scene_id = _valid_scene_id(job["scene_id"], "job")
    column = entry_scene_id(entry)
    if column is not None and column != scene_id:
        raise CorruptEntryError(f"DLQ column scene_id {column} differs from the job's scene_id {scene_id}")
    update_type = job["update_type"]
    if not isinstance(update_type, str) or not update_type:
        raise CorruptEntryError(f"job update_type must be a non-empty string, got {update_type!r}")
    return DecodedJob(scene_id, update_type, job.get("data"))


def failed_at_seconds(value: Any) -> float | None:
    """An entry's ``failed_at`` as Unix seconds, or None when it is not a time.

    PlexSync writes SQLite's ``CURRENT_TIMESTAMP`` (UTC text, whole seconds); ISO text with
    ``T``, ``Z``, an offset or fractions, and Unix numbers are read too. Text without a zone is UTC.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    return _text_seconds(value)


#: Naive UTC times are counted from here (what ``timestamp()`` of the same time in UTC gives).
_EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=4096)
def _text_seconds(value: str) -> float | None:
    """A text ``failed_at`` as Unix seconds; remembered, since a busy outage fails many jobs a second."""
    text = value.strip()
    readers = (_iso_seconds, float) if text[4:5] == "-" else (float, _iso_seconds)  # the likely one first
    for read in readers:
        try:
            return read(text)
        except ValueError:
            continue
    return None


def _iso_seconds(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - _EPOCH).total_seconds() if moment.tzinfo is None else moment.timestamp()


# ==== dlq window ================================================================================
# The DLQ entries of one outage window, read page by page on PlexSync's own index.
#
# Windows are Unix float seconds; ``failed_at`` is whatever was stored in a column of
# NUMERIC affinity. PlexSync stores ``CURRENT_TIMESTAMP`` text (``"2026-02-15 19:17:49"``,
# UTC); a hand edit or another tool may store ISO text with ``T``, ``Z``, ``+00:00`` or
# fractional seconds, or a Unix number. Each entry's time is SQLite's normalized
# ``YYYY-MM-DD HH:MM:SS.SSS`` text of that value (numbers read as Unix seconds), and the
# window is compared on it: windows are inclusive and exact to SQLite's millisecond.
#
# The DLQ is read-only, so the query must do with PlexSync's index ``idx_failed_at`` on the
# raw column, which orders numbers before text and text byte by byte. A window is therefore
# read as one index range per stored form (``FORMS``): the space text, the ``T``
# text and the numbers. Each range is paged in index order, re-sorted a whole second at a
# time, and the ranges are merged by (time, id). Memory holds about one page per range.
# A recovery reads the window by scene instead (``order="scene"``): SQLite sorts the
# window's ids by scene, newest entry of each scene first, once, and the rows are then read
# a page of ids at a time.

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
        #: What the last complete read met besides the selected entries, by ``error_type`` (None: no read finished).
        self._left_seen: dict[str, int] | None = None
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
        if self._left_seen is not None:  # a read in scene order counted them as it went: no second pass
            return dict(self._left_seen)
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
        left: dict[str, int] = {}
        with self.dlq.reader() as conn:
            params = self._params(conn)
            if self.order == "scene":
                rows = self._in_scene_order(conn, params, left)
            else:
                types = self._types_sql()
                rows = _merged([form.rows_in_time_order(conn, types, params) for form in self.stored_forms])
            judged = self.by_message
            for row in rows:
                keep = judged.get(row[2]) if judged else None  # by error_type
                if keep is None or keep(row[3]):  # error_message
                    yield dict(zip(_ENTRY_KEYS, row))
                else:
                    left[row[2]] = left.get(row[2], 0) + 1
        if self.order == "scene":
            self._left_seen = left

    def _in_scene_order(
        self, conn: sqlite3.Connection, params: dict[str, Any], left: dict[str, int]
    ) -> Iterator[tuple[Any, ...]]:
        """The window's rows by scene id, then newest first (time, id descending), a page at a time.

        SQLite sorts only ``(id, scene_id, time)`` of the window, and the sorted ids are kept
        in an array (8 bytes an entry). That first statement is finished before any row is
        read: PlexSync's DLQ keeps a rollback journal, so an open read would hold off its
        writes for the whole run. Each page of ids is then read by rowid in short statements;
        a row PlexSync deleted meanwhile is skipped.

        The first statement reads every ``error_type`` of the window and counts into ``left``
        the rows of the types not selected: what ``left_by_error_type`` reports, without the
        second pass over the window it cost after each run (0.04 s at 20,000 entries, 0.20 s
        at 100,000; the sort takes the other types' 20% more rows for 0.01 s). Each row's time
        is computed once, in a materialized part: compared in the ``WHERE`` of each part, it
        was computed three times a row (0.27 s against 0.18 s for 100,000 entries).
        """
        bounds = dict(params)
        for index, form in enumerate(self.stored_forms):
            form_bounds = form.bounds(params)
            bounds[f"lo{index}"], bounds[f"hi{index}"] = form_bounds["lo"], form_bounds["hi"]
        parts = " UNION ALL ".join(form.scene_order_sql(index) for index, form in enumerate(self.stored_forms))
        selected = set(self.error_types)
        ordered = array("q")
        cursor = conn.execute(
            f"WITH in_window AS MATERIALIZED ({parts}) SELECT id, error_type FROM in_window"
            " WHERE moment >= :low AND moment <= :high ORDER BY scene_id, moment DESC, id DESC",
            bounds,
        )
        try:
            while rows := cursor.fetchmany(self.page_size):
                for row_id, error_type in rows:
                    if error_type in selected:
                        ordered.append(row_id)
                    elif error_type is not None:  # nothing could select a row without one
                        left[error_type] = left.get(error_type, 0) + 1
        finally:
            cursor.close()
        columns = ENTRY_COLUMNS.replace(":max_bytes", str(int(self.max_job_bytes)))  # the ids are bound by position
        select = f"SELECT {columns} FROM dead_letters WHERE id IN "
        for offset in range(0, len(ordered), self.page_size):
            ids = ordered[offset : offset + self.page_size].tolist()
            found: dict[int, tuple[Any, ...]] = {}
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                part = ids[start : start + _IDS_PER_STATEMENT]
                rows = conn.execute(f"{select}({', '.join('?' * len(part))})", part).fetchall()
                found.update(zip(map(_row_id, rows), rows))
            yield from filter(None, map(found.get, ids))  # in the page's order; a row deleted meanwhile is skipped

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


# ==== dlq =======================================================================================
# PlexSync's dead-letter queue, read only: the one owner of ``<data_dir>/dlq.db``.
#
# Where PlexSync keeps its own ``sync_queue/dlq.py``, so a PlexSync developer finds it here.
#
# The file, its table ``dead_letters`` and its indexes are PlexSync's; PlexSync alone writes
# them. This class opens the file with SQLite's ``mode=ro`` on every read, so no statement of
# the plugin can change it: no table, index or pragma is ever created, a missing file is an
# error rather than a new empty DLQ, and no ``-journal`` appears. A ``dlq.db`` in WAL mode
# makes SQLite create ``-wal`` and ``-shm`` for any reader; the ones a read created are
# removed after it as SQLite's last connection would (``sqlite_uri.leave_no_new_files``), so
# PlexSync's folder gets no new file; those of a live PlexSync writer are its own.
# Every query of the file lives here or in ``DlqWindow`` (the window query).

logger = logging.getLogger(__name__)

DLQ_FILE_NAME = "dlq.db"

#: Age buckets of ``counts_by_type_and_age`` (upper bounds, seconds): an hour, a day, a week, 30 days.
DEFAULT_AGES = (3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)


class DlqUnavailable(sqlite3.DatabaseError):
    """The DLQ file cannot be read: it is missing, not SQLite, or has no ``dead_letters`` table.

    The message names the file. A ``sqlite3.DatabaseError``, so ``except sqlite3.Error`` still catches it.
    """


def _type_filter(error_types: Sequence[str] | None) -> tuple[str, list[str]]:
    if not error_types:
        return "", []
    return f" WHERE error_type IN ({', '.join('?' * len(error_types))})", list(error_types)


class DeadLetterQueue:
    """PlexSync's dead-letter queue in ``<data_dir>/dlq.db``, opened read-only.

    Constructing it touches nothing; each read opens the file (``mode=ro``) and closes it.

    Attributes:
        data_dir: The PlexSync data directory.
        db_path: Path of the SQLite file.
        timeout: Seconds a read waits while PlexSync holds a write lock.
    """

    def __init__(self, data_dir: str | Path, *, timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DLQ_FILE_NAME
        self.timeout = timeout
        self._uri = sqlite_uri(self.db_path, "ro")

    def _get_connection(self) -> sqlite3.Connection:
        """Open a new read-only connection to the DLQ file; the caller closes it.

        Raises:
            DlqUnavailable: The file is missing, is not a SQLite database, has no
                ``dead_letters`` table, or stayed locked for longer than ``timeout``.
        """
        try:
            # A window's generator may be finalized by the garbage collector on any thread;
            # each connection is still used by one reader at a time.
            conn = sqlite3.connect(self._uri, uri=True, timeout=self.timeout, check_same_thread=False)
        except sqlite3.Error as error:
            reason = "the file is missing" if not self.db_path.exists() else str(error)
            raise DlqUnavailable(f"cannot open the DLQ {self.db_path}: {reason}") from None
        try:
            conn.execute("SELECT 1 FROM dead_letters LIMIT 0")
        except sqlite3.Error as error:
            conn.close()
            raise DlqUnavailable(f"cannot read the DLQ {self.db_path}: {error}") from None
        return conn

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for the window query, closed on exit.

        ``mode=ro`` makes any write through it fail, so handing it to :class:`DlqWindow`
        keeps this class the only one that opens the file.

        Raises:
            DlqUnavailable: As :meth:`_get_connection`.
        """
        with leave_no_new_files(self.db_path):
            conn = self._get_connection()
            try:
                yield conn
            finally:
                conn.close()

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self.reader() as conn:
            return conn.execute(sql, params if isinstance(params, Mapping) else tuple(params)).fetchall()

    def window(
        self,
        start_time: float,
        end_time: float,
        error_types: Sequence[str],
        *,
        page_size: int = 1000,
        max_job_bytes: int = MAX_PICKLE_BYTES,
        stored_forms: Sequence[StoredForm] = FORMS,
        order: str = "time",
        by_message: Mapping[str, Callable[[Any], bool]] | None = None,
    ) -> DlqWindow:
        """The entries with ``start_time <= failed_at <= end_time`` of ``error_types``, oldest first (or by scene).

        The one place a window is made. See :class:`DlqWindow` (streamed in pages; ``len()``
        counts in SQL; ``by_message`` selects some types' entries by their stored message).
        """
        return DlqWindow(self, start_time, end_time, error_types, page_size=page_size, max_job_bytes=max_job_bytes,
                         stored_forms=stored_forms, order=order, by_message=by_message)

    def estimate_window(self, start_time: float, end_time: float) -> int:
        """About how many entries failed in the window, whatever their error type, for progress reports.

        Counted on PlexSync's ``idx_failed_at`` alone (milliseconds at 100,000 entries, where
        the exact count of a ``DlqWindow`` costs as much as reading it): rows of other error
        types are included and rows stored in other time forms are not.
        """
        low = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(math.floor(start_time)))
        high = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(math.floor(end_time))) + "~"  # and its fractions
        rows = self._query("SELECT COUNT(*) FROM dead_letters WHERE failed_at >= ? AND failed_at <= ?", (low, high))
        return int(rows[0][0])

    def get_count(self) -> int:
        """Return how many entries the DLQ holds."""
        return int(self._query("SELECT COUNT(*) FROM dead_letters")[0][0])

    def get_error_summary(self) -> dict[str, int]:
        """Return the number of entries per ``error_type``, by type name."""
        rows = self._query("SELECT error_type, COUNT(*) FROM dead_letters GROUP BY error_type ORDER BY error_type")
        return {row[0]: int(row[1]) for row in rows}

    def counts_by_type_and_age(self, now: float, ages: Sequence[float] = DEFAULT_AGES) -> dict[str, tuple[int, ...]]:
        """Count entries per ``error_type`` and age, in one read of the table.

        Args:
            now: The time ages are measured from (Unix seconds).
            ages: Upper bounds of the age buckets, in seconds.

        Returns:
            For each error type (by name), ``len(ages) + 1`` counts: failed less than the
            smallest age ago, less than the next, ..., then older. A ``failed_at`` that is not a
            time, or that lies more than a minute ahead of ``now``, counts as older: it is not
            known to be recent.
        """
        bounds = sorted(float(age) for age in ages)
        params = {f"b{i}": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - age)) for i, age in enumerate(bounds)}
        params["ahead"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 60))
        older = len(bounds)
        buckets = " ".join(f"WHEN t >= :b{i} THEN {i}" for i in range(older))
        # The normalized key (fixed-width text) compares as time does; one scan of the table.
        sql = (
            f"SELECT error_type, CASE WHEN t IS NULL OR t > :ahead THEN {older} {buckets} ELSE {older} END, COUNT(*)"
            f" FROM (SELECT error_type, {STORED_TIME_KEY} AS t FROM dead_letters) GROUP BY 1, 2"
        )
        counts: dict[str, list[int]] = {}
        for error_type, bucket, count in self._query(sql, params):
            counts.setdefault(str(error_type), [0] * (older + 1))[int(bucket)] += int(count)
        return {name: tuple(row) for name, row in sorted(counts.items())}

    def counts_by_day(self, error_types: Sequence[str] | None = None) -> list[tuple[str | None, int]]:
        """Count entries per UTC day of ``failed_at``, oldest day first.

        Text times and Unix numbers are both dated (a number is Unix seconds).

        Args:
            error_types: Only these types; all when None or empty.

        Returns:
            ``(day, count)`` pairs; ``day`` is ``YYYY-MM-DD``, or None for a time SQLite cannot read.
        """
        where, params = _type_filter(error_types)
        sql = f"SELECT substr({STORED_TIME_KEY}, 1, 10) AS day, COUNT(*) FROM dead_letters{where} GROUP BY day ORDER BY day"
        return [(row[0], int(row[1])) for row in self._query(sql, params)]
