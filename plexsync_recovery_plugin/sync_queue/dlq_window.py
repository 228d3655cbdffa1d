"""The DLQ entries of one outage window, read page by page.

``failed_at`` is SQLite text (``"2026-02-15 19:17:49"``, UTC; sometimes with fractional
seconds or a ``T``) while windows are Unix float seconds. Both sides are compared as
SQLite's normalized ``YYYY-MM-DD HH:MM:SS.SSS`` text, so a window is exact to SQLite's
millisecond and the comparison can use an index on that same expression.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .safe_pickle import MAX_PICKLE_BYTES

if TYPE_CHECKING:
    from .dlq import DeadLetterQueue

__all__ = [
    "DlqWindow",
    "FAILED_AT_KEY",
    "WINDOW_INDEX",
    "selected_milliseconds",
    "validate_window",
    "whole_seconds",
]

logger = logging.getLogger(__name__)

#: ``failed_at`` as comparable text at millisecond precision (NULL when it is not a time).
FAILED_AT_KEY = "strftime('%Y-%m-%d %H:%M:%f', failed_at)"
WINDOW_INDEX = "idx_dead_letters_recovery_window"
_CREATE_INDEX = f"CREATE INDEX IF NOT EXISTS {WINDOW_INDEX} ON dead_letters({FAILED_AT_KEY}, id)"
_BOUND_KEY = "datetime(?, 'unixepoch') || printf('.%03d', ?)"
_LAST_SECOND = 253402300799  # 9999-12-31 23:59:59, the last time SQLite's text can hold

#: The keys of each entry, in the order of ``_SELECT``'s columns (the key column is dropped).
_ENTRY_KEYS = ("id", "scene_id", "error_type", "error_message", "failed_at", "job_data", "job_data_size")
_SELECT = (
    "SELECT id, scene_id, error_type, error_message, failed_at,"
    " CASE WHEN length(job_data) <= :max_bytes THEN job_data END, length(job_data),"
    f" {FAILED_AT_KEY} FROM dead_letters WHERE "
)
# Keyset paging, each page a pure index seek on (key, id): the first page from the window's
# start; later ones finish the cursor's key (ties: PlexSync's failed_at has whole seconds,
# so a burst shares one value) and then go on after it. One statement with
# "key > k OR (key = k AND id > i)" would restart every page from the window's start.
_FIRST_PAGE = f"{FAILED_AT_KEY} >= :low AND {FAILED_AT_KEY} <= :high"
_SAME_KEY_PAGE = f"{FAILED_AT_KEY} = :after_key AND id > :after_id"
_LATER_KEY_PAGE = f"{FAILED_AT_KEY} > :after_key AND {FAILED_AT_KEY} <= :high"
_ORDER = f" ORDER BY {FAILED_AT_KEY}, id LIMIT :limit"
_SAME_KEY_ORDER = " ORDER BY id LIMIT :limit"  # the key is fixed; ordering by it too would make SQLite sort


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


class DlqWindow(Sequence[dict]):
    """Entries with ``start <= failed_at <= end`` and ``error_type`` in ``error_types``.

    Oldest first (``failed_at``, then ``id``). ``len()`` counts in SQL and iteration reads
    ``page_size`` rows at a time, so memory does not grow with the window. Blobs larger
    than ``max_job_bytes`` are not read: their ``job_data`` is None and ``job_data_size``
    says why. Indexing loads everything; prefer iteration.

    Raises:
        ValueError: A bound is NaN, or ``page_size`` is not a positive integer.
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
    ) -> None:
        self.dlq = dlq
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

    def _connect(self) -> sqlite3.Connection:
        conn = self.dlq._get_connection()
        try:
            with conn:
                conn.execute(_CREATE_INDEX)
        except sqlite3.OperationalError as error:  # read-only or locked DLQ: correct, only slower
            logger.debug("could not create the window index on %s: %s", self.dlq.db_path, error)
        return conn

    def __len__(self) -> int:
        if self._count is None:
            if self._empty:
                self._count = 0
            else:
                conn = self._connect()
                try:
                    sql = "SELECT COUNT(*) FROM dead_letters WHERE " + _FIRST_PAGE + self._type_filter()
                    self._count = int(conn.execute(sql, self._page_params(conn)).fetchone()[0])
                finally:
                    conn.close()
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._empty:
            return
        conn = self._connect()
        conn.row_factory = None  # plain tuples: the dicts are built here, faster than sqlite3.Row
        try:
            params = self._page_params(conn)
            while True:
                rows = self._fetch_page(conn, params)
                for row in rows:
                    yield dict(zip(_ENTRY_KEYS, row))
                if len(rows) < self.page_size:
                    return
                params["after_key"], params["after_id"] = rows[-1][-1], rows[-1][0]
        finally:
            conn.close()

    def _page_params(self, conn: sqlite3.Connection) -> dict[str, Any]:
        low, high = (_second_and_millis(millis) for millis in selected_milliseconds(self.start_time, self.end_time))
        low_key, high_key = conn.execute(f"SELECT {_BOUND_KEY}, {_BOUND_KEY}", (*low, *high)).fetchone()
        params: dict[str, Any] = {"low": low_key, "high": high_key, "max_bytes": self.max_job_bytes,
                                  "after_key": None, "after_id": None, "limit": self.page_size}
        params.update((f"type{index}", name) for index, name in enumerate(self.error_types))
        return params

    def _type_filter(self) -> str:
        return " AND error_type IN (" + ", ".join(f":type{index}" for index in range(len(self.error_types))) + ")"

    def _fetch_page(self, conn: sqlite3.Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Up to ``page_size`` rows after the cursor (``after_key``, ``after_id``), or from the start."""
        types = self._type_filter()
        if params["after_key"] is None:
            return conn.execute(_SELECT + _FIRST_PAGE + types + _ORDER, params).fetchall()
        rows = conn.execute(_SELECT + _SAME_KEY_PAGE + types + _SAME_KEY_ORDER, params).fetchall()
        if len(rows) < self.page_size:
            rest = dict(params, limit=self.page_size - len(rows))
            rows.extend(conn.execute(_SELECT + _LATER_KEY_PAGE + types + _ORDER, rest).fetchall())
        return rows

    def query_plan(self) -> dict[str, list[str]]:
        """``EXPLAIN QUERY PLAN`` of the page statements (``first``, ``same_key``, ``later_key``).

        Each should be one ``SEARCH ... USING INDEX idx_dead_letters_recovery_window`` with
        no temporary B-tree: a page costs an index seek, not a scan or a sort.
        """
        conn = self._connect()
        try:
            params = self._page_params(conn)
            params.update(after_key=params["low"], after_id=0)
            plans: dict[str, list[str]] = {}
            statements = (
                ("first", _FIRST_PAGE, _ORDER),
                ("same_key", _SAME_KEY_PAGE, _SAME_KEY_ORDER),
                ("later_key", _LATER_KEY_PAGE, _ORDER),
            )
            for name, where, order in statements:
                sql = "EXPLAIN QUERY PLAN " + _SELECT + where + self._type_filter() + order
                plans[name] = [str(row[-1]) for row in conn.execute(sql, params)]
            return plans
        finally:
            conn.close()

    def __getitem__(self, index: Any) -> Any:
        return list(self)[index]
