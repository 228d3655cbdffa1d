"""The DLQ window query: it seeks PlexSync's own ``idx_failed_at``, finds every stored form, pages exactly, streams.

Budget: about 3 s for the module (the memory test writes 20,000 rows).
"""

from __future__ import annotations

import pickle
import sqlite3
import time
import tracemalloc
from typing import Any

import pytest

from plexsync_recovery_plugin.dev.plexsync_data import PLEXSYNC_DLQ_INDEXES, PlexSyncData, Stored
from plexsync_recovery_plugin.sync_queue.dlq import FAILED_AT_INDEX, STORED_TIME_KEY, DeadLetterQueue, DlqWindow
from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.conftest import WINDOW_END, WINDOW_START

TYPES = ["PlexServerDown"]
S = int(WINDOW_START)
_BLOB = pickle.dumps(make_job(1, "metadata", {}))


def insert(plexsync: PlexSyncData, rows: list[tuple[Any, str]], blob: bytes = _BLOB) -> list[int]:
    """Dead-letter ``(failed_at stored as is, error_type)`` rows in order; return their ids."""
    return plexsync.add_dead_letters(
        {"job": {"scene_id": 1}, "job_data": blob, "error_type": kind, "failed_at": Stored(failed_at)}
        for failed_at, kind in rows
    )


def text(unix_seconds: float, separator: str = " ", suffix: str = "", digits: int = 0) -> str:
    """``failed_at`` text of an instant: PlexSync's form, or ISO with ``T``, a zone suffix, a fraction."""
    whole = int(unix_seconds)
    fraction = f".{round((unix_seconds - whole) * 10**digits):0{digits}d}" if digits else ""
    return time.strftime(f"%Y-%m-%d{separator}%H:%M:%S", time.gmtime(whole)) + fraction + suffix


def _index_names(dlq: DeadLetterQueue) -> set[str]:
    conn = sqlite3.connect(dlq.db_path)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


@pytest.mark.parametrize("error_types", [["PlexServerDown"], ["PlexServerDown", "PlexNotFound", "PlexTemporaryError"]])
def test_every_statement_seeks_plexsyncs_idx_failed_at(plexsync_dir, dlq, error_types: list[str]) -> None:
    insert(plexsync_dir, [(text(S + 600), "PlexServerDown")] * 50 + [(S + 601, "PlexServerDown")] * 5)
    conn = sqlite3.connect(dlq.db_path)
    conn.execute("ANALYZE")  # statistics must not tempt the planner into a scan either
    conn.close()
    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, error_types)
    assert len(list(window)) == len(window) == 55

    plans = window.query_plan()
    assert {name.split(".")[0] for name in plans} == {"space", "t", "number"}
    for statement, details in plans.items():
        assert details[0].startswith(f"SEARCH dead_letters USING INDEX {FAILED_AT_INDEX} ("), (statement, details)
        if statement.endswith(".sorted_second"):  # one second in several spellings: sorted, alone
            assert details[1:] == ["USE TEMP B-TREE FOR ORDER BY"], (statement, details)
        else:
            assert len(details) == 1, (statement, details)
    assert "failed_at=? AND rowid>?" in plans["space.same_value"][0]
    assert _index_names(dlq) == set(PLEXSYNC_DLQ_INDEXES)  # nothing added to PlexSync's file


WHOLE_SECOND_SPELLINGS = [(" ", ""), ("T", ""), (" ", "Z"), ("T", "Z"), (" ", "+00:00"), ("T", "+00:00"), ("T", "-00:00")]


@pytest.mark.parametrize(("separator", "suffix"), WHOLE_SECOND_SPELLINGS)
def test_every_text_form_is_found_exactly_at_the_window_edges(plexsync_dir, dlq, separator, suffix) -> None:
    def spell(instant: float, digits: int = 0) -> str:
        return text(instant, separator, suffix, digits)

    ids = insert(plexsync_dir, [(spell(S + offset), "PlexServerDown") for offset in (9, 10, 20, 21)])
    whole = DlqWindow(dlq, S + 10, S + 20, TYPES)
    assert [entry["id"] for entry in whole] == ids[1:3]
    assert len(whole) == 2

    ids = insert(plexsync_dir, [(spell(S + 30 + offset, 3), "PlexServerDown") for offset in (0.249, 0.25, 10.75, 10.751)])
    milliseconds = DlqWindow(dlq, S + 30.25, S + 40.75, TYPES)
    assert [entry["failed_at"] for entry in milliseconds] == [spell(S + 30.25, 3), spell(S + 40.75, 3)]
    assert [entry["id"] for entry in milliseconds] == ids[1:3]
    assert len(milliseconds) == 2


def test_unix_numbers_are_found_exactly_at_the_window_edges(plexsync_dir, dlq) -> None:
    ids = insert(plexsync_dir, [(S + 9, "PlexServerDown"), (S + 10, "PlexServerDown"), (S + 20, "PlexServerDown"),
                                (S + 21, "PlexServerDown"), (S + 30.249, "PlexServerDown"), (S + 30.25, "PlexServerDown"),
                                (S + 40.75, "PlexServerDown"), (S + 40.751, "PlexServerDown")])
    assert [entry["id"] for entry in DlqWindow(dlq, S + 10, S + 20, TYPES)] == ids[1:3]
    window = DlqWindow(dlq, S + 30.25, S + 40.75, TYPES)
    assert [entry["failed_at"] for entry in window] == [S + 30.25, S + 40.75]  # numbers come back as numbers
    assert len(window) == 2


def _expected_ids(dlq: DeadLetterQueue, low: str, high: str) -> list[int]:
    """The window by brute force: every row, sorted in Python by normalized time and id."""
    conn = sqlite3.connect(dlq.db_path)
    try:
        rows = conn.execute(f"SELECT id, {STORED_TIME_KEY}, error_type FROM dead_letters").fetchall()
    finally:
        conn.close()
    return [row_id for row_id, key, kind in sorted(rows, key=lambda row: (row[1] or "", row[0]))
            if key is not None and low <= key <= high and kind == "PlexServerDown"]


@pytest.mark.parametrize("page_size", [1, 2, 5, 7, 23, 1000])
def test_pages_return_every_row_once_across_ties_spellings_and_boundaries(plexsync_dir, dlq, page_size: int) -> None:
    rows: list[tuple[Any, str]] = []
    for second in range(6):  # tie groups of 1, 4, 7, 10, 13, 16 rows, other types mixed into the ties
        for index in range(1 + 3 * second):
            kind = "PlexAuthError" if index % 4 == 3 else "PlexServerDown"
            rows.append((text(S + 60 * second), kind))
    spellings = [text(S + 120, "T", "Z"), S + 120, text(S + 120, " ", ".000"), text(S + 120, " ", "+00:00"),
                 text(S + 120.5, digits=1), text(S + 120.5, "T", "Z", 3), S + 120.5, text(S + 120.5, digits=2)]
    rows += [(value, "PlexServerDown") for value in spellings * 3]  # one second, eight spellings, three times
    rows += [
        (text(S - 1), "PlexServerDown"),  # just before
        (text(S + 1801), "PlexServerDown"),  # just after
        (text(S + 1800), "PlexServerDown"),  # the end is inclusive
        (S + 1800.001, "PlexServerDown"),  # a millisecond after it
        (text(S - 1) + ".9996", "PlexServerDown"),  # 18:59:59.9996: SQLite reads 18:59:59.999
        (S - 0.0004, "PlexServerDown"),  # a Unix number that SQLite rounds up to the start
        ("not a time", "PlexServerDown"),
        (None, "PlexServerDown"),
    ]
    rows += [(text(S + 180), "PlexServerDown")] * 5  # inserted later: higher ids inside an old tie
    insert(plexsync_dir, rows)
    expected = _expected_ids(dlq, "2026-02-15 19:00:00.000", "2026-02-15 19:30:00.000")

    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=page_size)
    got = [entry["id"] for entry in window]

    assert got == expected
    assert len(got) == len(set(got)) == len(window) == 40 + 24 + 2 + 5  # ties, spellings, end and start, late
    assert {entry["error_type"] for entry in window} == {"PlexServerDown"}


def _trace_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    statements: list[str] = []
    real_connect = DeadLetterQueue._get_connection

    def traced(self: DeadLetterQueue) -> sqlite3.Connection:
        conn = real_connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(DeadLetterQueue, "_get_connection", traced)
    return statements


def test_iteration_fetches_page_by_page(plexsync_dir, dlq, monkeypatch: pytest.MonkeyPatch) -> None:
    insert(plexsync_dir, [(text(S + 300 + second), "PlexServerDown") for second in range(40)])  # 40 seconds
    statements = _trace_statements(monkeypatch)
    iterator = iter(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=10))
    first = [next(iterator) for _ in range(3)]
    pages = [sql for sql in statements if "ORDER BY failed_at, id LIMIT" in sql]
    assert len(pages) == 3  # three entries taken: one page per stored form, not the window
    rest = list(iterator)
    assert len(first) + len(rest) == 40
    pages = [sql for sql in statements if "ORDER BY failed_at, id LIMIT" in sql]
    assert len(pages) == 3 + 4  # the space form's further pages (each re-reads its last, unfinished second)


def test_a_burst_in_one_second_is_paged_by_id(plexsync_dir, dlq, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = insert(plexsync_dir, [(text(S + 300), "PlexServerDown")] * 45)  # PlexSync's whole seconds: one value
    statements = _trace_statements(monkeypatch)
    assert [entry["id"] for entry in DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=10)] == ids
    assert not [sql for sql in statements if "ORDER BY strftime" in sql]  # never sorted by SQLite
    assert len([sql for sql in statements if "ORDER BY id LIMIT" in sql]) == 5  # 35 more rows, then the end


@pytest.mark.parametrize("order", ["time", "scene"])
def test_iterating_a_large_window_holds_one_page_not_the_window(plexsync_dir, dlq, order: str) -> None:
    blob = pickle.dumps(make_job(1, "metadata", {"title": "x" * 400}))
    plexsync_dir.insert_dead_letter_rows(
        (None, 1, blob, "PlexServerDown", "boom", "", 3, text(S + 60 * minute + second % 3))
        for minute in range(30) for second in range(666)
    )
    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=200, order=order)

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
    assert streamed_peak < listed_peak / 20  # ... and streaming it holds about one page per form (or its sorted ids)
