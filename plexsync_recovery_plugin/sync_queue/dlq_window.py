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

__all__ = ["DlqWindow", "WINDOW_INDEX", "FAILED_AT_KEY", "validate_window", "whole_seconds"]

logger = logging.getLogger(__name__)

#: ``failed_at`` as comparable text at millisecond precision (NULL when it is not a time).
FAILED_AT_KEY = "strftime('%Y-%m-%d %H:%M:%f', failed_at)"
WINDOW_INDEX = "idx_dead_letters_recovery_window"
_CREATE_INDEX = f"CREATE INDEX IF NOT EXISTS {WINDOW_INDEX} ON dead_letters({FAILED_AT_KEY}, id)"
_BOUND_KEY = "datetime(?, 'unixepoch') || printf('.%03d', ?)"
_LAST_SECOND = 253402300799  # 9999-12-31 23:59:59, the last time SQLite's text can hold


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


def _millisecond_parts(seconds: float, *, rounding: str) -> tuple[int, int]:
    """Split ``seconds`` into whole seconds and milliseconds, rounding exactly (no float error)."""
    millis = int((Decimal(seconds) * 1000).to_integral_value(rounding=rounding))
    whole, fraction = divmod(max(0, min(millis, _LAST_SECOND * 1000 + 999)), 1000)
    return whole, fraction


class DlqWindow(Sequence[dict]):
    """Entries with ``start <= failed_at <= end`` and ``error_type`` in ``error_types``.

    Oldest first (``failed_at``, then ``id``). ``len()`` counts in SQL and iteration reads
    ``page_size`` rows at a time, so memory does not grow with the window. Blobs larger
    than ``max_job_bytes`` are not read: their ``job_data`` is None and ``job_data_size``
    says why. Indexing loads everything; prefer iteration.
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
        self.page_size = page_size
        self.max_job_bytes = max_job_bytes
        self._count: int | None = None
        if math.isnan(self.start_time) or math.isnan(self.end_time):
            raise ValueError(f"outage window bounds must be numbers, got {start_time!r} and {end_time!r}")

    @property
    def _empty(self) -> bool:
        return not self.error_types or self.start_time > self.end_time or self.end_time < 0

    def _filter(self, conn: sqlite3.Connection) -> tuple[str, list[Any]]:
        low = _millisecond_parts(self.start_time, rounding=ROUND_CEILING)
        high = _millisecond_parts(self.end_time, rounding=ROUND_FLOOR)
        low_key, high_key = conn.execute(f"SELECT {_BOUND_KEY}, {_BOUND_KEY}", (*low, *high)).fetchone()
        types = ", ".join("?" * len(self.error_types))
        return (
            f"{FAILED_AT_KEY} BETWEEN ? AND ? AND error_type IN ({types})",
            [low_key, high_key, *self.error_types],
        )

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
                    where, params = self._filter(conn)
                    self._count = int(conn.execute(f"SELECT COUNT(*) FROM dead_letters WHERE {where}", params).fetchone()[0])
                finally:
                    conn.close()
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._empty:
            return
        conn = self._connect()
        try:
            where, params = self._filter(conn)
            sql = (
                "SELECT id, scene_id, error_type, error_message, failed_at,"
                " CASE WHEN length(job_data) <= ? THEN job_data END AS job_data,"
                f" length(job_data) AS job_data_size, {FAILED_AT_KEY} AS failed_at_key"
                f" FROM dead_letters WHERE {where} AND ({FAILED_AT_KEY} > ? OR ({FAILED_AT_KEY} = ? AND id > ?))"
                f" ORDER BY {FAILED_AT_KEY}, id LIMIT ?"
            )
            after_key, after_id = "", -1
            while True:
                rows = conn.execute(sql, [self.max_job_bytes, *params, after_key, after_key, after_id, self.page_size]).fetchall()
                for row in rows:
                    entry = {key: row[key] for key in row.keys()}
                    del entry["failed_at_key"]
                    yield entry
                if len(rows) < self.page_size:
                    return
                after_key, after_id = rows[-1]["failed_at_key"], rows[-1]["id"]
        finally:
            conn.close()

    def __getitem__(self, index: Any) -> Any:
        return list(self)[index]
