"""Timing batched against per-entry recovery on a library-sized DLQ, through the real clients.

Why: a "Sync all" during an outage dead-letters tens of thousands of jobs, and the
recovery must finish in seconds with flat memory. :func:`run_bench` builds such a data
directory once (:mod:`.bench_data`), serves it a loopback Stash and Plex (:mod:`.testing`),
and times the whole recovery — ``outage_ended.send`` to ``recovery_completed`` — through
``stashapi``'s ``StashInterface`` and ``plexapi``'s ``PlexServer``, once per path. Each path
runs in a fresh subprocess (:mod:`.bench_worker`) with its own copy of the data, because
peak RSS is a per-process high-water mark that never goes down; the test servers stay in
this process, as Stash and Plex are other processes in life.

:mod:`.bench_window` times the DLQ window query alone over a large DLQ.
``plexsync-recovery bench`` (:mod:`.cli.bench_cmd`) is the command-line face of both and
imports this module only when the command runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from . import bench_worker
from .bench_data import ACKED_HISTORY, Dataset, build_data_dir
from .bench_worker import PathRun

__all__ = [
    "BENCH_PATHS",
    "BenchReport",
    "Dataset",
    "PathRun",
    "build_data_dir",
    "run_bench",
]

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
    from ..testing import PlexTestServer, StashTestServer

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
