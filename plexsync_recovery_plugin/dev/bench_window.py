"""Timing the DLQ window query alone over a large DLQ that has only PlexSync's own indexes.

Why: the plugin may not add an index to PlexSync's ``dlq.db``, so a window is read on
PlexSync's ``idx_failed_at`` with one index range per stored form of ``failed_at`` (see
:mod:`.sync_queue.dlq_forms`). This measures that read over a million rows written as
PlexSync writes them (:mod:`.plexsync_data`), what the ranges for the other forms
cost when no row uses them, and the same read over a DLQ where a share of the rows is
stored in those other forms. ``plexsync-recovery bench --window-query`` prints it.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from ..sync_queue.dlq import DeadLetterQueue
from ..sync_queue.dlq import FORMS
from .plexsync_data import PlexSyncData, plexsync_timestamp

__all__ = ["WindowQueryReport", "build_window_query_dlq", "run_window_query_bench"]

#: The bench's outage: 2026-02-15 19:00:00 .. 19:30:00 UTC.
WINDOW_START = 1771182000.0
WINDOW_SECONDS = 1800
_YEAR = 365 * 86_400
_TYPES = ["PlexServerDown"]


@dataclass
class WindowQueryReport:
    """The DLQ window query over a large DLQ (seconds; each ``*_seconds`` list holds one value per run).

    Attributes:
        rows: Rows in each DLQ.
        window_rows: Rows the window selects.
        build_seconds: Time to write both DLQs (PlexSync's schema, one ``executemany`` each).
        query_seconds: Reading the whole window (``len()`` and every page), PlexSync's form only in the file.
        plexsync_form_only_seconds: The same read seeking PlexSync's form alone: the other
            forms' ranges cost the difference.
        returned: Rows the last read returned.
        mixed_share: Share of the second DLQ's rows stored as ``T``/``Z``/``+00:00`` text or Unix numbers.
        mixed_query_seconds: Reading the window of that second DLQ.
        mixed_returned: Rows that read returned.
        scene_order_seconds: Reading the first DLQ's window by scene, as a recovery reads it.
        plan: ``EXPLAIN QUERY PLAN`` details of each statement (``DlqWindow.query_plan``).
    """

    rows: int
    window_rows: int
    build_seconds: float
    query_seconds: list[float]
    plexsync_form_only_seconds: list[float]
    returned: int
    mixed_share: float
    mixed_query_seconds: list[float]
    mixed_returned: int
    plan: dict[str, list[str]]
    scene_order_seconds: list[float]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def _spelling(unix_seconds: int, index: int, mixed_every: int) -> Any:
    """``failed_at`` as PlexSync stores it, or for every ``mixed_every``-th row another form."""
    if not mixed_every or index % mixed_every:
        return plexsync_timestamp(unix_seconds)
    text = plexsync_timestamp(unix_seconds)
    variant = (index // mixed_every) % 5
    if variant == 0:
        return text.replace(" ", "T") + "Z"
    if variant == 1:
        return text.replace(" ", "T") + ".250"
    if variant == 2:
        return text + "+00:00"
    return unix_seconds if variant == 3 else unix_seconds + 0.5  # a Unix integer or real


def build_window_query_dlq(data_dir: str | Path, rows: int, window_rows: int, *, mixed_share: float = 0.0) -> tuple[float, float]:
    """Write a PlexSync ``dlq.db`` of ``rows`` entries over ~a year, ``window_rows`` of them in the window.

    Args:
        data_dir: Directory to write ``dlq.db`` in.
        rows: Entries in all.
        window_rows: Entries inside the bench window.
        mixed_share: Share of rows (0..1) stored in a form other than PlexSync's.

    Returns:
        The window ``(start, end)`` in Unix seconds.

    Raises:
        ValueError: ``window_rows`` is negative or larger than ``rows``, or ``mixed_share`` is outside 0..1.
    """
    if not 0 <= window_rows <= rows:
        raise ValueError(f"window rows must be between 0 and {rows}, got {window_rows!r}")
    if not 0 <= mixed_share <= 1:
        raise ValueError(f"mixed share must be between 0 and 1, got {mixed_share!r}")
    mixed_every = round(1 / mixed_share) if mixed_share else 0
    blob = pickle.dumps({"job_id": 1, "scene_id": 1, "update_type": "metadata", "data": {"title": "Scene"}})
    outside = rows - window_rows
    start = int(WINDOW_START)

    def generate() -> Iterator[tuple[Any, ...]]:
        # Outside rows spread over the year before the window; window rows inside it.
        for index in range(outside):
            failed_at = start - _YEAR + (index * (_YEAR - 1)) // max(outside, 1)
            yield (index, index + 1, blob, "PlexServerDown", "boom", "", 3, _spelling(failed_at, index, mixed_every))
        for index in range(window_rows):
            failed_at = start + (index * WINDOW_SECONDS) // max(window_rows, 1)
            yield (outside + index, outside + index + 1, blob, "PlexServerDown", "boom", "", 3,
                   _spelling(failed_at, index, mixed_every))

    PlexSyncData(data_dir).insert_dead_letter_rows(generate())
    return WINDOW_START, WINDOW_START + WINDOW_SECONDS


def _time_reads(dlq: DeadLetterQueue, start: float, end: float, repeat: int, **options: Any) -> tuple[list[float], int]:
    timings: list[float] = []
    returned = 0
    for _ in range(repeat):
        began = time.perf_counter()
        window = dlq.window(start, end, _TYPES, **options)
        len(window)
        returned = sum(1 for _ in window)
        timings.append(time.perf_counter() - began)
    return timings, returned


def run_window_query_bench(
    rows: int = 1_000_000,
    window_rows: int = 10_000,
    *,
    repeat: int = 3,
    mixed_share: float = 0.1,
    work_dir: str | Path | None = None,
) -> WindowQueryReport:
    """Time reading one outage window (``len()`` and every page) out of DLQs of ``rows`` entries.

    Raises:
        ValueError: ``rows`` is below 1, ``window_rows`` outside ``0..rows``, ``repeat``
            below 1, or ``mixed_share`` outside 0..1.
    """
    if rows < 1 or repeat < 1:
        raise ValueError(f"rows and repeat must be positive, got {rows!r} and {repeat!r}")
    with tempfile.TemporaryDirectory(prefix="plexsync-bench-window-", dir=work_dir) as tmp:
        plexsync_dir, mixed_dir = Path(tmp, "plexsync"), Path(tmp, "mixed")
        began = time.perf_counter()
        start, end = build_window_query_dlq(plexsync_dir, rows, window_rows)
        build_window_query_dlq(mixed_dir, rows, window_rows, mixed_share=mixed_share)
        build_seconds = time.perf_counter() - began
        dlq = DeadLetterQueue(plexsync_dir)
        query_seconds, returned = _time_reads(dlq, start, end, repeat)
        alone_seconds, _ = _time_reads(dlq, start, end, repeat, stored_forms=FORMS[:1])
        mixed_seconds, mixed_returned = _time_reads(DeadLetterQueue(mixed_dir), start, end, repeat)
        scene_seconds, _ = _time_reads(dlq, start, end, repeat, order="scene")
        plan = dlq.window(start, end, _TYPES).query_plan()
    return WindowQueryReport(rows, window_rows, build_seconds, query_seconds, alone_seconds, returned,
                             mixed_share, mixed_seconds, mixed_returned, plan, scene_seconds)
