"""PlexSync's dead-letter queue, read only: the one owner of ``<data_dir>/dlq.db``.

Where PlexSync keeps its own ``sync_queue/dlq.py``, so a PlexSync developer finds it here.

The file, its table ``dead_letters`` and its indexes are PlexSync's; PlexSync alone writes
them. This class opens the file with SQLite's ``mode=ro`` on every read, so no statement of
the plugin can change it: no table, index or pragma is ever created, a missing file is an
error rather than a new empty DLQ, and no ``-journal`` appears. A ``dlq.db`` in WAL mode
makes SQLite create ``-wal`` and ``-shm`` for any reader; the ones a read created are
removed after it as SQLite's last connection would (``sqlite_uri.leave_no_new_files``), so
PlexSync's folder gets no new file; those of a live PlexSync writer are its own.
Every query of the file lives here or in :mod:`.dlq_window` (the window query).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..sqlite_uri import leave_no_new_files, sqlite_uri
from .dlq_forms import FORMS, STORED_TIME_KEY, StoredForm
from .dlq_window import DlqWindow
from .safe_pickle import MAX_PICKLE_BYTES

__all__ = ["DLQ_FILE_NAME", "DeadLetterQueue", "DlqUnavailable"]

logger = logging.getLogger(__name__)

DLQ_FILE_NAME = "dlq.db"


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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.reader() as conn:
            return conn.execute(sql, tuple(params)).fetchall()

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
