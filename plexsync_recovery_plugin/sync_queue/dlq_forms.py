"""The stored forms of ``dead_letters.failed_at`` and the window query's SQL for each.

``failed_at`` has NUMERIC affinity and PlexSync's index ``idx_failed_at`` orders it raw:
numbers first (by value), then text byte by byte. Each form below is one contiguous,
ordered range of that index for a window:

* ``space``: ``YYYY-MM-DD HH:MM:SS`` (PlexSync's ``CURRENT_TIMESTAMP``), with or without
  fractional seconds, ``Z`` or ``+00:00``;
* ``t``: the same with ``T`` between date and time;
* ``number``: Unix seconds stored as an integer or a real.

Within a form, index order is time order from one whole second to the next, but not
inside a second (``"...:49.5"`` sorts before ``"...:49Z"``, and ``".5"``/``".50"`` are one
time): ``StoredForm.rows_in_time_order`` re-sorts a second at a time. A time with a non-zero UTC offset,
without seconds, or a date alone is not in any range and is not selected.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Iterator

__all__ = ["ENTRY_COLUMNS", "FORMS", "KEY", "RAW", "SECOND", "STORED_TIME_KEY", "StoredForm", "group_order", "row_order"]

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

    def scene_order_sql(self, types: str, index: int) -> str:
        """The window's ``(id, scene_id, time)`` in this range, its bounds named ``lo{index}``/``hi{index}``.

        One part of a ``UNION ALL`` over the forms that reads a window in scene order.
        """
        return (f"SELECT id, scene_id, {self.key} AS moment FROM dead_letters"
                f" WHERE failed_at >= :lo{index} AND failed_at <= :hi{index} AND {self._where(types)}")

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
