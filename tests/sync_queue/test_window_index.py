"""The DLQ window query: it seeks the expression index, pages exactly, and streams.

Budget: about 2 s for the module (the memory test writes 20,000 rows).
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import tracemalloc
from typing import Any

import pytest

from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.dlq_window import FAILED_AT_KEY, WINDOW_INDEX, DlqWindow
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_END, WINDOW_START

TYPES = ["PlexServerDown"]


def insert(dlq: DeadLetterQueue, rows: list[tuple[str, str]], blob: bytes | None = None) -> list[int]:
    """Insert ``(failed_at text, error_type)`` rows in order; return their ids."""
    data = blob if blob is not None else pickle.dumps(make_job(1, "metadata", {}))
    conn = sqlite3.connect(dlq.db_path)
    try:
        with conn:
            return [
                int(conn.execute(
                    "INSERT INTO dead_letters (scene_id, job_data, error_type, failed_at) VALUES (1, ?, ?, ?)",
                    (data, error_type, failed_at),
                ).lastrowid)
                for failed_at, error_type in rows
            ]
    finally:
        conn.close()


def test_window_index_is_created_once_on_the_normalized_key_and_id(dlq: DeadLetterQueue) -> None:
    for _ in range(2):  # the second window finds the index in place
        window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES)
        assert list(window) == []
        assert len(window) == 0
    conn = sqlite3.connect(dlq.db_path)
    try:
        [(sql,)] = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (WINDOW_INDEX,))
        columns = [row[2] for row in conn.execute(f"PRAGMA index_xinfo({WINDOW_INDEX})") if row[5]]  # key columns
    finally:
        conn.close()
    assert sql.endswith(f"ON dead_letters({FAILED_AT_KEY}, id)")
    assert columns == [None, "id"]  # an expression, then id


@pytest.mark.parametrize("error_types", [["PlexServerDown"], ["PlexServerDown", "PlexNotFound", "PlexTemporaryError"]])
def test_every_page_statement_is_an_index_seek_without_a_sort(dlq: DeadLetterQueue, error_types: list[str]) -> None:
    insert(dlq, [("2026-02-15 19:10:00", "PlexServerDown")] * 50)
    conn = sqlite3.connect(dlq.db_path)
    conn.execute("ANALYZE")  # statistics must not tempt the planner into a scan either
    conn.close()
    plans = DlqWindow(dlq, WINDOW_START, WINDOW_END, error_types).query_plan()
    assert set(plans) == {"first", "same_key", "later_key"}
    for statement, details in plans.items():
        assert len(details) == 1, (statement, details)
        assert details[0].startswith(f"SEARCH dead_letters USING INDEX {WINDOW_INDEX} ("), (statement, details)
    assert "<expr>=? AND id>?" in plans["same_key"][0]


def _expected_ids(dlq: DeadLetterQueue, low: str, high: str) -> list[int]:
    """The window by brute force: every row, sorted in Python by normalized time and id."""
    conn = sqlite3.connect(dlq.db_path)
    try:
        rows = conn.execute(f"SELECT id, {FAILED_AT_KEY}, error_type FROM dead_letters").fetchall()
    finally:
        conn.close()
    return [row_id for row_id, key, kind in sorted(rows, key=lambda row: (row[1] or "", row[0]))
            if key is not None and low <= key <= high and kind == "PlexServerDown"]


@pytest.mark.parametrize("page_size", [1, 2, 5, 7, 23, 1000])
def test_pages_return_every_row_once_across_ties_and_boundaries(dlq: DeadLetterQueue, page_size: int) -> None:
    rows: list[tuple[str, str]] = []
    for second in range(6):  # tie groups of 1, 4, 7, 10, 13, 16 rows, other types mixed into the ties
        for index in range(1 + 3 * second):
            kind = "PlexAuthError" if index % 4 == 3 else "PlexServerDown"
            rows.append((f"2026-02-15 19:0{second}:00", kind))
    rows += [
        ("2026-02-15 18:59:59", "PlexServerDown"),  # just before
        ("2026-02-15 19:30:01", "PlexServerDown"),  # just after
        ("2026-02-15T19:02:00.250", "PlexServerDown"),  # other spellings sort by their real time
        ("2026-02-15 19:02:00.250", "PlexServerDown"),
        ("2026-02-15 19:30:00", "PlexServerDown"),  # the end is inclusive
        ("not a time", "PlexServerDown"),
    ]
    rows += [("2026-02-15 19:03:00", "PlexServerDown")] * 5  # inserted later: higher ids inside an old tie
    insert(dlq, rows)
    expected = _expected_ids(dlq, "2026-02-15 19:00:00.000", "2026-02-15 19:30:00.000")

    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=page_size)
    got = [entry["id"] for entry in window]

    assert got == expected
    assert len(got) == len(set(got)) == len(window) == 48  # 40 in the ties, 3 spellings and ends, 5 late
    assert {entry["error_type"] for entry in window} == {"PlexServerDown"}


def test_iteration_fetches_page_by_page(dlq: DeadLetterQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    insert(dlq, [("2026-02-15 19:05:00", "PlexServerDown")] * 40 + [("2026-02-15 19:06:00", "PlexServerDown")] * 25)
    fetched: list[int] = []
    real_fetch = DlqWindow._fetch_page

    def spy(self: DlqWindow, conn: sqlite3.Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        rows = real_fetch(self, conn, params)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(DlqWindow, "_fetch_page", spy)
    iterator = iter(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=10))
    first = [next(iterator) for _ in range(3)]
    assert fetched == [10]  # three entries taken: one page read, not the window
    rest = list(iterator)
    assert len(first) + len(rest) == 65
    assert fetched == [10] * 6 + [5]
    assert len(fetched) == math.ceil(65 / 10)


def test_iterating_a_large_window_holds_one_page_not_the_window(dlq: DeadLetterQueue) -> None:
    blob = pickle.dumps(make_job(1, "metadata", {"title": "x" * 400}))
    rows = [(f"2026-02-15 19:{minute:02d}:00", "PlexServerDown") for minute in range(30) for _ in range(666)]
    insert(dlq, rows, blob)
    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=200)

    tracemalloc.start()
    try:
        count = sum(1 for _ in window)
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        held = list(window)
        _, listed_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(held) == 19_980
    assert listed_peak > 10_000_000  # the whole window really is big ...
    assert streamed_peak < listed_peak / 20  # ... and streaming it holds about one page
