"""The benchmark: how long a recovery takes on a library-sized DLQ, what bounds it, and how it prints.

Why: a "Sync all" during an outage dead-letters tens of thousands of jobs, and the recovery
must finish in seconds with flat memory, without holding PlexSync's worker. ``run_bench``
times the whole recovery (``outage_ended.send`` to ``recovery_completed``) through the real
clients on loopback servers, one process per path (``bench_worker``); ``run_sizes`` gives
peak memory per size; ``run_floor_bench`` the time the same work takes with nothing but
SQLite, pickle and one transaction (what "close to the floor" is measured against);
``run_window_query_bench`` the DLQ's window query on a large file; the dedup bench the
live-queue gate on a queue holding every acked job ever; ``run_decode_bench`` what decoding
a realistic job safely costs against plain ``pickle.loads``. ``print_*`` show the reports as
tables, or as JSON.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from persistqueue import SQLiteAckQueue
from persistqueue.serializers import pickle as queue_pickle

from ..decode import plainly_safe, safe_loads
from ..sync_queue import operations as ledger
from ..sync_queue.dlq import DLQ_FILE_NAME, FORMS, DeadLetterQueue
from ..sync_queue.operations import (
    QUEUE_DIR_NAME,
    QUEUE_FILE_NAME,
    QUEUE_TABLE,
    QueueFile,
    make_job,
)
from . import bench_worker
from .bench_worker import PathRun
from .plexsync_data import ACKED_HISTORY, Dataset, PlexSyncData, build_data_dir, plexsync_timestamp, realistic_jobs

__all__ = ['BENCH_PATHS', 'BenchReport', 'Dataset', 'PathRun', 'build_data_dir', 'run_bench', 'SizeRun', 'SizesReport', 'rss_slope', 'run_sizes', 'WindowQueryReport', 'build_window_query_dlq', 'run_window_query_bench', 'FLOOR_CHUNK', 'FloorReport', 'run_floor_bench', 'DedupReport', 'build_long_lived_queue', 'run_dedup_bench', 'print_bench', 'print_dedup', 'print_floor', 'print_sizes', 'print_window_query', 'DecodeReport', 'run_decode_bench', 'print_decode']


# ==== bench =====================================================================================
# Timing batched against per-entry recovery on a library-sized DLQ, through the real clients.
#
# Why: a "Sync all" during an outage dead-letters tens of thousands of jobs, and the
# recovery must finish in seconds with flat memory. :func:`run_bench` builds such a data
# directory once (``build_data_dir``), serves it a loopback Stash and Plex (``plex_server``, ``stash_server``),
# and times the whole recovery — ``outage_ended.send`` to ``recovery_completed`` — through
# ``stashapi``'s ``StashInterface`` and ``plexapi``'s ``PlexServer``, once per path. Each path
# runs in a fresh subprocess (:mod:`.bench_worker`) with its own copy of the data, because
# peak RSS is a per-process high-water mark that never goes down; the test servers stay in
# this process, as Stash and Plex are other processes in life.
#
# ``run_window_query_bench`` times the DLQ window query alone over a large DLQ.
# ``plexsync-recovery bench`` (``cli.dev_cmds``) is the command-line face of both and
# imports this module only when the command runs.

logger = logging.getLogger(__name__)

#: The two ways of recovering that the bench compares, in the order they run.
BENCH_PATHS = ("batched", "per-entry")


@dataclass
class BenchReport:
    """Both paths over the same data.

    Attributes:
        entries: In-window entries per run.
        noise: Other entries in the DLQ.
        deleted: Scenes deleted from Stash.
        queued: Scenes already queued.
        build_seconds: Time to write the data directory once.
        acked_history: Old acked rows in the queue.
        scattered: Whether scene ids are scattered over the failure order.
        live_worker: Whether PlexSync's worker ran beside the batched run.
        runs: One ``PathRun`` per path, in run order.
        ratio: Per-entry seconds / batched seconds (0.0 unless both ran).
        same_result: Whether every path that ran reported the same result and queue size.
    """

    entries: int
    noise: int
    deleted: int
    queued: int
    build_seconds: float
    acked_history: int
    scattered: bool
    live_worker: bool
    runs: list[PathRun]
    ratio: float = 0.0
    same_result: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def _run_worker(spec: dict[str, Any], timeout: float | None) -> PathRun:
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # The slow per-entry path draws its progress on our terminal: its stderr is ours then.
    spec = dict(spec, show_progress=spec["path"] == "per-entry" and sys.stderr.isatty())
    try:
        done = subprocess.run(
            [sys.executable, "-m", bench_worker.__name__],
            input=json.dumps(spec),
            stdout=subprocess.PIPE,
            stderr=None if spec["show_progress"] else subprocess.PIPE,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return PathRun(path=spec["path"], entries=spec["entries"], error=f"timed out after {timeout} s")
    if done.returncode != 0 or not done.stdout.strip():
        last = ((done.stderr or "").strip().splitlines() or ["no output on stdout"])[-1]
        return PathRun(path=spec["path"], entries=spec["entries"], error=f"worker exited {done.returncode}: {last}")
    return PathRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def _check_arguments(entries: int, paths: Sequence[str], dlq_rows: int | None) -> None:
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
        raise ValueError(f"entries must be a positive integer, got {entries!r}")
    if dlq_rows is not None and dlq_rows < entries:
        raise ValueError(f"DLQ rows {dlq_rows!r} must be at least the {entries} in-window entries")
    unknown = [path for path in paths if path not in BENCH_PATHS]
    if unknown or not paths or len(set(paths)) != len(paths):
        raise ValueError(f"paths must be distinct names among {', '.join(BENCH_PATHS)}, got {list(paths)!r}")


def run_bench(
    entries: int,
    paths: Sequence[str] = BENCH_PATHS,
    *,
    work_dir: str | Path | None = None,
    timeout: float | None = None,
    dlq_rows: int | None = None,
    acked_history: int = ACKED_HISTORY,
    scattered: bool = True,
    live_worker: bool = False,
    progress: bool = False,
) -> BenchReport:
    """Build the data once, then time each path in its own worker process and fresh data copy.

    Args:
        entries: In-window ``PlexServerDown`` entries.
        paths: Any of ``BENCH_PATHS``, run in the order given.
        work_dir: Where to build the data directories; a temporary directory (removed
            afterwards) when None.
        timeout: Seconds each worker may take; no limit when None.
        dlq_rows: Rows in the DLQ in all (the rest outside the window or of other types);
            twice ``entries`` when None.
        acked_history: Old acked rows in the queue (enqueued before the window).
        scattered: Scatter scene ids over the failure order (a fixed-seed permutation).
        progress: Draw a progress bar from ``recovery_progress`` (into memory) during each run,
            to measure what progress costs.
        live_worker: Run PlexSync's worker (taking and acking jobs) in another process
            beside the batched run, and report its waits.

    Returns:
        The report; a path whose worker failed has ``error`` set.

    Raises:
        ValueError: ``entries`` is below 1, ``dlq_rows`` below ``entries``, or a path is
            unknown or repeated.
    """
    _check_arguments(entries, paths, dlq_rows)
    noise = entries if dlq_rows is None else dlq_rows - entries
    logger.info("bench: building a DLQ of %d in-window entries and %d others, %d acked rows in the queue",
                entries, noise, acked_history)
    with tempfile.TemporaryDirectory(prefix="plexsync-bench-", dir=work_dir) as tmp:
        template = Path(tmp) / "template"
        started = time.perf_counter()
        dataset = build_data_dir(template, entries, noise=noise, acked_history=acked_history, scattered=scattered)
        build_seconds = time.perf_counter() - started
        runs = _time_paths(Path(tmp), template, dataset, paths, timeout, live_worker, progress)
    return _compared(BenchReport(entries, dataset.noise, dataset.deleted, dataset.queued, build_seconds,
                                 acked_history, scattered, live_worker, runs))


def _compared(report: BenchReport) -> BenchReport:
    """Fill in the per-entry/batched ratio and whether every path reached the same result."""
    runs = report.runs
    timings = {run.path: run.seconds for run in runs if not run.error}
    if timings.get("batched") and "per-entry" in timings:
        report.ratio = timings["per-entry"] / timings["batched"]
    outcomes = [(run.result, run.queue_rows) for run in runs]
    report.same_result = all(not run.error for run in runs) and all(outcome == outcomes[0] for outcome in outcomes)
    return report


def _time_paths(
    tmp: Path, template: Path, dataset: Dataset, paths: Sequence[str], timeout: float | None, live_worker: bool,
    progress: bool = False,
) -> list[PathRun]:
    """Serve loopback Stash and Plex, and run each path's worker over its own copy of ``template``."""
    from .plex_server import PlexTestServer
    from .stash_server import StashTestServer

    runs: list[PathRun] = []
    with StashTestServer(scenes=dataset.stash_scene_ids()) as stash, PlexTestServer() as plex:
        for path in paths:
            data_dir = tmp / path
            shutil.copytree(template, data_dir)
            spec = {
                "path": path,
                "entries": dataset.entries,
                "data_dir": str(data_dir),
                "stash_connection": stash.connection(),
                "plex_url": plex.url,
                "plex_token": plex.token,
                "start": dataset.start,
                "end": dataset.end,
                "live_worker": live_worker and path == "batched",
                "progress": progress,
            }
            before = stash.operation_counts
            logger.info("bench: timing the %s path over %d entries", path, dataset.entries)
            run = _run_worker(spec, timeout)
            after = stash.operation_counts
            run.stash_requests = {name: after[name] - before[name] for name in after if after[name] != before[name]}
            runs.append(run)
            shutil.rmtree(data_dir, ignore_errors=True)
    return runs


# ==== bench sizes ===============================================================================
# Peak memory against window size: one bench per size, each in its own worker process.
#
# Why: a recovery must stay flat in memory however many entries the window holds (it reads
# the DLQ a page at a time and writes a chunk at a time). One size says little; the slope over
# several does. :func:`run_sizes` runs :func:`.bench.run_bench` once per size (its own data,
# its own worker process, so peaks never mix) and fits a line through the peaks.
# ``plexsync-recovery bench --sizes 50000,100000,200000`` prints it.

@dataclass
class SizeRun:
    """One size's run of the first path given.

    Attributes:
        entries: In-window entries.
        seconds: ``outage_ended`` to ``recovery_completed``.
        peak_rss_mb: The worker's peak RSS, MiB.
        baseline_rss_mb: Its peak RSS just before the run (imports, clients).
        error: Why the run failed, or ``""``.
    """

    entries: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float
    error: str = ""


@dataclass
class SizesReport:
    """Peak RSS per size and its slope.

    Attributes:
        path: The path measured.
        sizes: One :class:`SizeRun` per size, in the order given.
        slope_kb_per_1000: Least-squares slope of peak RSS over entries, KiB per 1,000 entries.
        growth_slope_kb_per_1000: The same for peak minus baseline (the run's own growth).
        reports: The full bench report of each size.
    """

    path: str
    sizes: list[SizeRun]
    slope_kb_per_1000: float
    growth_slope_kb_per_1000: float
    reports: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def rss_slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of ``(entries, MiB)`` points in KiB per 1,000 entries (0.0 under two sizes)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    slope_mb_per_entry = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope_mb_per_entry * 1024 * 1000


def run_sizes(sizes: Sequence[int], path: str = "batched", **options: Any) -> SizesReport:
    """Run the bench once per size (``options`` as :func:`.bench.run_bench` takes them, ``dlq_rows`` included).

    Raises:
        ValueError: No size, a size below 1, or a bad option (as ``run_bench`` raises).
    """
    if not sizes:
        raise ValueError("give at least one size")
    reports: list[BenchReport] = [run_bench(size, [path], **options) for size in sizes]
    runs = [SizeRun(report.entries, run.seconds, run.peak_rss_mb, run.baseline_rss_mb, run.error)
            for report in reports for run in report.runs]
    good = [run for run in runs if not run.error]
    return SizesReport(
        path,
        runs,
        rss_slope([(run.entries, run.peak_rss_mb) for run in good]),
        rss_slope([(run.entries, run.peak_rss_mb - run.baseline_rss_mb) for run in good]),
        [report.as_dict() for report in reports],
    )


# ==== bench window ==============================================================================
# Timing the DLQ window query alone over a large DLQ that has only PlexSync's own indexes.
#
# Why: the plugin may not add an index to PlexSync's ``dlq.db``, so a window is read on
# PlexSync's ``idx_failed_at`` with one index range per stored form of ``failed_at`` (see
# :mod:`.sync_queue.dlq_forms`). This measures that read over a million rows written as
# PlexSync writes them (:mod:`.plexsync_data`), what the ranges for the other forms
# cost when no row uses them, and the same read over a DLQ where a share of the rows is
# stored in those other forms. ``plexsync-recovery bench --window-query`` prints it.

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


# ==== bench floor ===============================================================================
# The floor of a recovery on this machine: the work no implementation can skip, and nothing else.
#
# Why: the speed targets are set against an estimate of what reading, decoding and writing
# N entries must cost. This measures it on the bench's own data (``build_data_dir``), with
# the safety the plugin may not drop and none of its gates: the window's rows in scene order
# in one statement, each job decoded by ``safe_loads``, one new job per scene pickled as
# PlexSync's ``put`` does, and jobs and ledger records written in one transaction per 1,000
# entries with one statement each. No Stash, no Plex, no dedup, no counting of outcomes.
# A recovery that took this long would do nothing but this. ``bench --floor`` prints it.

#: Entries per transaction, as a recovery's chunk.
FLOOR_CHUNK = 1000
_BY_SCENE = """
SELECT id, scene_id, failed_at, job_data FROM dead_letters
WHERE failed_at >= :low AND failed_at <= :high AND error_type = 'PlexServerDown'
ORDER BY scene_id, failed_at, id
"""


@dataclass
class FloorReport:
    """The floor's steps, in seconds (each list holds one value per run).

    Attributes:
        entries: In-window entries read.
        jobs: Jobs written (one per scene).
        read_seconds: The window's rows in scene order, one statement.
        decode_seconds: ``safe_loads`` of every entry's job.
        encode_seconds: A new job per scene, pickled as persist-queue does.
        write_seconds: Jobs and ledger records, one transaction per ``FLOOR_CHUNK`` entries.
        total_seconds: The sum, per run.
    """

    entries: int
    jobs: int
    read_seconds: list[float]
    decode_seconds: list[float]
    encode_seconds: list[float]
    write_seconds: list[float]
    total_seconds: list[float]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def _one_run(data_dir: Path, start: float, end: float) -> tuple[int, int, list[float]]:
    """Read, decode, encode and write the window once; return entries, jobs and each step's seconds."""
    began = time.perf_counter()
    dlq = sqlite3.connect(f"file:{data_dir / DLQ_FILE_NAME}?mode=ro", uri=True)
    try:
        rows = dlq.execute(_BY_SCENE, {"low": plexsync_timestamp(start), "high": plexsync_timestamp(end)}).fetchall()
    finally:
        dlq.close()
    read = time.perf_counter()
    jobs = [safe_loads(row[3]) for row in rows]
    decoded = time.perf_counter()
    now = time.time()
    blobs: list[tuple[int, int, bytes, int]] = []  # (first row of the scene, scene, pickled job, job id)
    for index, (row, job) in enumerate(zip(rows, jobs)):
        if not blobs or blobs[-1][1] != row[1]:
            queued = make_job(row[1], job["update_type"], job.get("data"), now=now)
            blobs.append((index, row[1], queue_pickle.dumps(queued), queued["job_id"]))
    encoded = time.perf_counter()
    _write(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME, rows, blobs, now)
    written = time.perf_counter()
    return len(rows), len(blobs), [read - began, decoded - read, encoded - decoded, written - encoded]


def _write(db_path: Path, rows: list[tuple[Any, ...]], blobs: list[tuple[int, int, bytes, int]], now: float) -> None:
    """Jobs and ledger records, ``FLOOR_CHUNK`` entries a transaction, as a recovery's session writes them."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("BEGIN IMMEDIATE")
        ledger.ensure_ledger(conn)
        conn.execute("COMMIT")
        job_of: dict[int, tuple[int, int]] = {}  # scene -> (job id, queue row)
        next_job = 0
        for offset in range(0, len(rows), FLOOR_CHUNK):
            first = next_job
            while next_job < len(blobs) and blobs[next_job][0] < offset + FLOOR_CHUNK:
                next_job += 1  # the jobs of the scenes that begin in this chunk
            part = blobs[first:next_job]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, 1)",
                             [(blob, now) for _, _, blob, _ in part])
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            job_of.update((scene, (job_id, last - len(part) + 1 + index)) for index, (_, scene, _, job_id) in enumerate(part))
            ledger.write_records(conn, [(row[0], row[2], row[1], *job_of[row[1]], "floor", now, ledger.DONE, None)
                                        for row in rows[offset : offset + FLOOR_CHUNK]])
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def run_floor_bench(
    entries: int, *, acked_history: int = 100_000, repeat: int = 3, work_dir: str | Path | None = None
) -> FloorReport:
    """Build the bench's data for ``entries`` and time the floor ``repeat`` times, each on a fresh copy.

    Raises:
        ValueError: ``entries`` or ``repeat`` is below 1.
    """
    if entries < 1 or repeat < 1:
        raise ValueError(f"entries and repeat must be positive, got {entries!r} and {repeat!r}")
    steps: list[list[float]] = []
    read_entries = jobs = 0
    with tempfile.TemporaryDirectory(prefix="plexsync-bench-floor-", dir=work_dir) as tmp:
        template = Path(tmp) / "template"
        dataset = build_data_dir(template, entries, noise=entries, acked_history=acked_history)
        for number in range(repeat):
            copy = Path(tmp) / f"run{number}"
            shutil.copytree(template, copy)
            read_entries, jobs, seconds = _one_run(copy, dataset.start, dataset.end)
            steps.append(seconds)
            shutil.rmtree(copy, ignore_errors=True)
    read, decode, encode, write = (list(column) for column in zip(*steps))
    return FloorReport(read_entries, jobs, read, decode, encode, write, [sum(run) for run in steps])


# ==== bench dedup ===============================================================================
# Timing the "already covered" read over a queue that holds months of acked jobs.
#
# Why: PlexSync never clears acked rows, so after months its queue holds every job it ever
# ran. A recovery reads the queue once per run (live jobs of any age, acked jobs enqueued
# since the window began); the bound is applied in SQL so old rows are never unpickled. This
# builds such a queue (rows exactly as ``SQLiteAckQueue.put`` writes them, then acked) and
# times that read. ``plexsync-recovery bench --dedup`` prints it.

#: The bench's outage starts here (2026-02-15 19:00:00 UTC); the history lies before it.
_HISTORY_SECONDS = 180 * 86_400
#: Live jobs and jobs acked after the window began: what the read must find.
_LIVE_ROWS = 200
_RECENT_ACKED_ROWS = 800


@dataclass
class DedupReport:
    """One read of a long-lived queue (seconds; ``read_seconds`` holds one value per run).

    Attributes:
        acked_rows: Acked rows enqueued before the window (the history).
        build_seconds: Time to write the queue.
        file_mb: Size of ``data.db``.
        read_seconds: ``QueueFile.snapshot(window start)``: live jobs plus acked jobs since the window.
        live_scenes: Scenes with a live job that the read found.
        recent_acked_scenes: Scenes with an acked job since the window began that it found.
    """

    acked_rows: int
    build_seconds: float
    file_mb: float
    read_seconds: list[float]
    live_scenes: int
    recent_acked_scenes: int

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


def _rows(acked_rows: int) -> Iterator[tuple[bytes, float, int]]:
    step = _HISTORY_SECONDS / max(acked_rows, 1)
    for index in range(acked_rows):
        job = make_job(index % 50_000 + 1, "metadata", {"title": f"Scene {index}", "tags": ["a", "b", "c"]})
        yield queue_pickle.dumps(job), WINDOW_START - _HISTORY_SECONDS + index * step, 5
    for index in range(_RECENT_ACKED_ROWS):
        yield queue_pickle.dumps(make_job(60_000 + index, "metadata", {})), WINDOW_START + index, 5
    for index in range(_LIVE_ROWS):
        yield queue_pickle.dumps(make_job(70_000 + index, "metadata", {})), WINDOW_START - 86_400 * 30, 0


def build_long_lived_queue(data_dir: Path, acked_rows: int) -> Path:
    """Write PlexSync's queue with ``acked_rows`` old acked jobs, recent acked jobs and live ones; return its path."""
    SQLiteAckQueue(str(data_dir / QUEUE_DIR_NAME), auto_resume=False).close()  # persist-queue's own table
    path = data_dir / QUEUE_DIR_NAME
    conn = sqlite3.connect(path / "data.db")
    try:
        with conn:
            conn.executemany(f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, ?)", _rows(acked_rows))
    finally:
        conn.close()
    return path


def run_dedup_bench(acked_rows: int, *, runs: int = 3, work_dir: Path | None = None) -> DedupReport:
    """Build the queue once, then time the read ``runs`` times."""
    with tempfile.TemporaryDirectory(prefix="plexsync-dedup-bench-", dir=work_dir) as temp:
        started = time.perf_counter()
        queue_path = build_long_lived_queue(Path(temp), acked_rows)
        build = time.perf_counter() - started
        owner = QueueFile(queue_path)
        seconds: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            snapshot = owner.snapshot(WINDOW_START)
            seconds.append(time.perf_counter() - started)
        size = (queue_path / "data.db").stat().st_size / 1e6
    return DedupReport(acked_rows, build, size, seconds, len(snapshot.live), len(snapshot.acked))


# ==== bench decode ==============================================================================
# What decoding a DLQ job safely costs against plain ``pickle.loads`` (which would run any code).
#
# Why: every entry of a window is decoded once, so the decoder's cost per job is a floor of
# every recovery. This pickles ``realistic_jobs`` (half with performers and tags as lists of
# strings, half as lists of ``{"id", "name"}`` dicts, 0-2 KB of details) as PlexSync's
# ``pickle.dumps`` does, then times ``safe_loads`` and ``pickle.loads`` over all of them in
# alternating rounds with the collector paused (both build the same objects; a collection
# would land on one or the other by chance). ``plexsync-recovery bench --decode`` prints it.

#: Rounds of each decoder, alternating; the median round of each is reported.
_DECODE_ROUNDS = 9


@dataclass
class DecodeReport:
    """``safe_loads`` against ``pickle.loads`` on realistic jobs, microseconds a job.

    Attributes:
        jobs: Jobs decoded per round.
        mean_bytes: Their mean pickled size.
        quick: How many took ``safe_loads``'s quick path.
        groups: Per group of jobs (``"lists of strings"``, ``"lists of dicts"``, ``"all"``):
            ``{"pickle_us", "safe_us", "ratio"}``, medians over the rounds.
    """

    jobs: int
    mean_bytes: float
    quick: int
    groups: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


def _round_seconds(decode: Any, blobs: list[bytes]) -> float:
    started = time.perf_counter()
    for blob in blobs:
        decode(blob)
    return time.perf_counter() - started


def run_decode_bench(jobs: int = 2_000, *, rounds: int = _DECODE_ROUNDS) -> DecodeReport:
    """Time ``safe_loads`` and ``pickle.loads`` on ``jobs`` realistic jobs, ``rounds`` rounds each.

    Raises:
        ValueError: ``jobs`` is below 2 or ``rounds`` below 1.
    """
    if jobs < 2 or rounds < 1:
        raise ValueError(f"decode bench needs at least 2 jobs and 1 round, got {jobs!r} and {rounds!r}")
    blobs = [pickle.dumps(job) for job in realistic_jobs(jobs)]
    parts = {"lists of strings": blobs[1::2], "lists of dicts": blobs[0::2], "all": blobs}
    for blob in blobs:  # the first use compiles the quick path's expressions: not part of any round
        safe_loads(blob)
    timings: dict[str, dict[str, list[float]]] = {name: {"pickle": [], "safe": []} for name in parts}
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, part in parts.items():
                timings[name]["pickle"].append(_round_seconds(pickle.loads, part) / len(part))
                timings[name]["safe"].append(_round_seconds(safe_loads, part) / len(part))
    finally:
        if collecting:
            gc.enable()
    groups = {}
    for name, seconds in timings.items():
        plain, safe = (sorted(values)[len(values) // 2] * 1e6 for values in (seconds["pickle"], seconds["safe"]))
        groups[name] = {"pickle_us": round(plain, 2), "safe_us": round(safe, 2), "ratio": round(safe / plain, 2)}
    return DecodeReport(jobs, sum(map(len, blobs)) / len(blobs), sum(map(plainly_safe, blobs)), groups)


# ==== bench output ==============================================================================
# How ``plexsync-recovery bench`` prints its reports: tables for people, the report itself for ``--json``.
#
# Only printing lives here; ``cli.dev_cmds`` parses the flags and runs the bench. It imports
# no bench module at run time (only their types, for the checker), so loading it costs nothing.

#: The phase columns, as ``bench_worker.PHASES`` names them, then the rest.
_PHASE_COLUMNS = ("plex_health", "queue_snapshot", "dlq_read", "decode", "ledger_read", "stash_lookup", "write", "other")
_PHASE_HEADERS = ("plex", "queue snapshot", "DLQ read", "decode", "ledger", "Stash", "write", "other")


def print_dedup(out: Any, report: "DedupReport") -> None:
    """The ``--dedup`` read over a long-lived queue."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    out.line(f"queue: {report.acked_rows} old acked rows + live and recent ones, {report.file_mb:.0f} MB"
             f" (built in {report.build_seconds:.1f} s)")
    out.line("read (live jobs + acked since the window): " + ", ".join(f"{s:.3f} s" for s in report.read_seconds))
    out.line(f"found {report.live_scenes} scenes with a live job, {report.recent_acked_scenes} acked since the window")


def print_decode(out: Any, report: "DecodeReport") -> None:
    """The ``--decode`` ratio: ``safe_loads`` against ``pickle.loads``, per kind of job."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    out.line(f"{report.jobs} realistic jobs of {report.mean_bytes:.0f} bytes on average,"
             f" {report.quick} on the quick path; microseconds a job, median of {_DECODE_ROUNDS} rounds")
    rows = [[name, f"{group['pickle_us']:.2f}", f"{group['safe_us']:.2f}", f"{group['ratio']:.2f}x"]
            for name, group in report.groups.items()]
    out.table(["jobs", "pickle.loads", "safe_loads", "ratio"], rows)


def print_bench(out: Any, report: "BenchReport") -> None:
    """Each path's time and memory, where its time went, and what PlexSync's worker waited."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    rows = [
        [run.path, run.entries, round(run.seconds, 3), round(run.cpu_seconds, 3), round(run.entries_per_second),
         round(run.peak_rss_mb, 1), run.error or "ok"]
        for run in report.runs
    ]
    out.table(
        ["path", "entries", "seconds", "CPU s", "entries/s", "peak RSS MB", "status"],
        rows,
        title=(
            f"recovery of {report.entries} in-window entries ({report.noise} others in the DLQ,"
            f" {report.deleted} scenes deleted from Stash, {report.queued} already queued,"
            f" {report.acked_history} old acked rows in the queue; scene ids "
            f"{'scattered over' if report.scattered else 'in'} failure order)"
        ),
    )
    if report.ratio:
        out.line(f"per-entry/batched: {report.ratio:.1f}x")
    out.line("same result on every path: " + ("yes" if report.same_result else "NO"))
    _print_phases(out, report)
    for run in report.runs:
        if run.stash_requests:
            asked = ", ".join(f"{name} x{count}" for name, count in sorted(run.stash_requests.items()))
            out.line(f"{run.path}: Stash resolved {asked}")
        if run.transactions:
            out.line(f"{run.path}: {run.transactions} queue transactions held the lock {run.transaction_seconds:.3f} s"
                     f" in all (within write), the longest {run.longest_transaction_ms:.1f} ms;"
                     f" the longest wait for PlexSync's lock {run.longest_lock_wait_ms:.1f} ms")
        if run.live_worker is not None:
            _print_live_worker(out, run.path, run.live_worker)


def _print_phases(out: Any, report: "BenchReport") -> None:
    rows = [[run.path, *(round(run.phases.get(name, 0.0), 3) for name in _PHASE_COLUMNS)]
            for run in report.runs if run.phases]
    if rows:
        out.table(["path", *_PHASE_HEADERS], rows, title="seconds per phase (Stash: on its own thread, overlapping the rest; other: the engine, the plugin, signals, waiting for Stash)")


def _print_live_worker(out: Any, path: str, seen: dict[str, Any]) -> None:
    out.line(
        f"{path}: PlexSync's worker took {seen['jobs_taken']} jobs during the recovery ({seen['seconds']:.2f} s,"
        f" {seen['operations']} get/ack calls, {seen['empty_gets']} found it empty); longest wait"
        f" {seen['longest_wait_ms']:.1f} ms (get {seen['longest_get_ms']:.1f}, ack {seen['longest_ack_ms']:.1f};"
        f" its own CPU in the longest {seen['longest_wait_cpu_ms']:.1f}),"
        f" 99th percentile {seen['p99_wait_ms']:.1f} ms" + (f"; error: {seen['error']}" if seen["error"] else "")
    )
    out.line(
        f"{path}: alone before the recovery it took {seen['baseline_jobs_taken']} jobs in"
        f" {seen['baseline_operations']} calls; longest {seen['baseline_longest_wait_ms']:.1f} ms,"
        f" 99th percentile {seen['baseline_p99_wait_ms']:.1f} ms"
    )


def print_sizes(out: Any, report: "SizesReport") -> None:
    """Peak RSS per window size and the slope."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    rows = [[run.entries, round(run.seconds, 3), round(run.baseline_rss_mb, 1), round(run.peak_rss_mb, 1),
             round(run.peak_rss_mb - run.baseline_rss_mb, 1), run.error or "ok"] for run in report.sizes]
    out.table(["entries", "seconds", "baseline RSS MB", "peak RSS MB", "growth MB", "status"], rows,
              title=f"peak RSS of the {report.path} path per window size (each size in its own process)")
    out.line(f"slope: {report.slope_kb_per_1000:.1f} KB of peak RSS per 1,000 entries"
             f" ({report.growth_slope_kb_per_1000:.1f} KB of growth over the baseline)")


def print_window_query(out: Any, report: "WindowQueryReport") -> None:
    """The ``--window-query`` reads."""
    if out.json_mode:
        out.json(report.as_dict())
        return

    def runs(timings: list[float]) -> str:
        return ", ".join(f"{seconds:.4f}" for seconds in timings)

    out.table(
        ["DLQ", "rows", "window rows", "returned", "read s (each run)"],
        [
            ["PlexSync's form only", report.rows, report.window_rows, report.returned, runs(report.query_seconds)],
            ["  same, seeking PlexSync's form alone", report.rows, report.window_rows, report.returned,
             runs(report.plexsync_form_only_seconds)],
            [f"{report.mixed_share:.0%} in T/Z/+00:00/Unix forms", report.rows, report.window_rows,
             report.mixed_returned, runs(report.mixed_query_seconds)],
            ["PlexSync's form, by scene (as a recovery reads)", report.rows, report.window_rows, report.returned,
             runs(report.scene_order_seconds)],
        ],
        title=f"DLQ window query on PlexSync's idx_failed_at (len() and every page; DLQs built in "
        f"{report.build_seconds:.1f} s)",
    )
    for statement, details in report.plan.items():
        out.line(f"plan ({statement}): {'; '.join(details)}")


def print_floor(out: Any, report: "FloorReport") -> None:
    """The ``--floor`` steps, one row per run."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    steps = zip(report.read_seconds, report.decode_seconds, report.encode_seconds, report.write_seconds,
                report.total_seconds)
    out.table(
        ["run", "read", "decode", "encode", "write", "total s"],
        [[number, *(round(seconds, 3) for seconds in run)] for number, run in enumerate(steps, 1)],
        title=(f"the floor of a recovery of {report.entries} entries ({report.jobs} jobs): the window in one"
               " statement, safe_loads, one job per scene, 1,000 entries a transaction; no Stash, Plex or dedup"),
    )
