"""Timing batched against per-entry recovery on a library-sized DLQ, through the real clients.

Why: a "Sync all" during an outage dead-letters tens of thousands of jobs, and the
recovery must finish in seconds with flat memory. This module builds such a data
directory quickly (one ``executemany`` of pre-pickled jobs, in PlexSync's real schema),
serves it a loopback Stash and Plex (:mod:`.testing`), and times the whole recovery —
``outage_ended.send`` to ``recovery_completed`` — through ``stashapi``'s
``StashInterface`` and ``plexapi``'s ``PlexServer``, once per path. Each path runs in a
fresh subprocess (``python -m plexsync_recovery_plugin.bench``, the spec on stdin) with its
own copy of the data, because peak RSS is a per-process high-water mark that never goes
down; the test servers stay in the parent, as Stash and Plex are other processes in life.

:mod:`.bench_window` times the DLQ window query alone over a large DLQ.
``plexsync-recovery bench`` (:mod:`.cli.bench_cmd`) is the command-line face of both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .sync_queue.dlq import DLQ_FILE_NAME, DeadLetterQueue
from .sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, open_queue
from .testing.plexsync_data import PlexSyncData, plexsync_timestamp

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

#: The bench's outage: 2026-02-15 19:00:00 .. 19:30:00 UTC (failed_at has whole seconds).
WINDOW_START = 1771182000.0
WINDOW_SECONDS = 1800
#: One scene in ten is deleted from Stash, another one in ten is already queued.
_DELETED_REMAINDER = 0
_QUEUED_REMAINDER = 5
#: Noise entries: outside the window, or inside it with a type the default run skips.
_NOISE_TYPES = ("PlexAuthError", "PlexTemporaryError", "PlexNotFound", "PlexPermanentError")
_STACK = "Traceback (most recent call last):\n  ...\nPlexServerDown: Plex did not answer\n"
_BASE_JOB_ID = 1_700_000_000_000_000


@dataclass(frozen=True)
class Dataset:
    """What :func:`build_data_dir` wrote.

    Attributes:
        entries: In-window ``PlexServerDown`` entries, scenes ``1..entries`` (what a run recovers).
        noise: Entries outside the window or of other error types (to be left alone).
        deleted: How many of those scenes Stash must not have (``id % 10 == 0``).
        queued: How many of those scenes were already queued (``id % 10 == 5``).
        start: Window start, Unix seconds.
        end: Window end, Unix seconds.
    """

    entries: int
    noise: int
    deleted: int
    queued: int
    start: float
    end: float

    def stash_scene_ids(self) -> Iterator[int]:
        """Yield the ids of the scenes Stash has: every in-window scene except the deleted ones."""
        return (scene_id for scene_id in range(1, self.entries + 1) if not _is_deleted(scene_id))


def _is_deleted(scene_id: int) -> bool:
    return scene_id % 10 == _DELETED_REMAINDER


def _is_queued(scene_id: int) -> bool:
    return scene_id % 10 == _QUEUED_REMAINDER


def _dlq_rows(entries: int, noise: int) -> Iterator[tuple[Any, ...]]:
    """DLQ rows in insertion order: window entries spread over the window, noise between them.

    ``failed_at`` is whole seconds, so a large window has many equal values (as PlexSync's
    ``CURRENT_TIMESTAMP`` gives): the pager must break those ties by ``id``.
    """
    noise_per_entry = noise / entries if entries else 0.0
    emitted_noise = 0
    for index in range(entries):
        scene_id = index + 1
        failed_at = WINDOW_START + (index * WINDOW_SECONDS) // max(entries, 1)
        job = {
            "job_id": _BASE_JOB_ID + scene_id,
            "scene_id": scene_id,
            "update_type": "metadata",
            "data": {"title": f"Scene {scene_id}", "studio": "Bench Studio", "rating100": scene_id % 100},
            "enqueued_at": failed_at - 30.0,
            "job_key": f"scene_{scene_id}",
        }
        yield (job["job_id"], scene_id, pickle.dumps(job), "PlexServerDown", "Plex did not answer",
               _STACK, 3, plexsync_timestamp(failed_at))
        due = int((index + 1) * noise_per_entry)
        while emitted_noise < due:
            yield _noise_row(emitted_noise, entries)
            emitted_noise += 1
    while emitted_noise < noise:
        yield _noise_row(emitted_noise, entries)
        emitted_noise += 1


def _noise_row(index: int, entries: int) -> tuple[Any, ...]:
    scene_id = entries + index + 1
    kind = index % 3
    if kind == 0:  # before the window
        failed_at, error_type = WINDOW_START - 1 - (index % 86_400), "PlexServerDown"
    elif kind == 1:  # after the window
        failed_at, error_type = WINDOW_START + WINDOW_SECONDS + 1 + (index % 86_400), "PlexServerDown"
    else:  # inside, but of a type the default run does not recover
        failed_at = WINDOW_START + index % (WINDOW_SECONDS + 1)
        error_type = _NOISE_TYPES[index % len(_NOISE_TYPES)]
    job = {"job_id": _BASE_JOB_ID + scene_id, "scene_id": scene_id, "update_type": "metadata",
           "data": {"title": f"Scene {scene_id}"}, "enqueued_at": failed_at - 30.0, "job_key": f"scene_{scene_id}"}
    return (job["job_id"], scene_id, pickle.dumps(job), error_type, "boom", _STACK, 3, plexsync_timestamp(failed_at))


def build_data_dir(data_dir: str | Path, entries: int, *, noise: int | None = None) -> Dataset:
    """Write a PlexSync data directory holding a DLQ of ``entries`` in-window entries and a queue.

    The DLQ is written by :class:`~.testing.plexsync_data.PlexSyncData` (PlexSync's schema
    and indexes, one ``executemany``); the queue's schema by ``SQLiteAckQueue`` itself. Scenes ``1..entries`` each have one in-window
    ``PlexServerDown`` entry; every tenth scene (``id % 10 == 0``) is meant to be deleted
    from Stash, and every tenth (``id % 10 == 5``) is already queued, as ``put`` would have.

    Args:
        data_dir: Directory to fill (created if needed); must not hold a DLQ yet.
        entries: In-window ``PlexServerDown`` entries.
        noise: Entries outside the window or of other types; ``entries`` when None.

    Returns:
        The description of what was written.

    Raises:
        ValueError: ``entries`` or ``noise`` is negative, or the directory already has a DLQ.
    """
    noise = entries if noise is None else noise
    if entries < 0 or noise < 0:
        raise ValueError(f"entries and noise must not be negative, got {entries!r} and {noise!r}")
    data_dir = Path(data_dir)
    if (data_dir / DLQ_FILE_NAME).exists():
        raise ValueError(f"{data_dir} already holds a DLQ; the bench needs a fresh directory")
    PlexSyncData(data_dir).insert_dead_letter_rows(_dlq_rows(entries, noise))  # PlexSync's schema and rows

    queue = open_queue(data_dir)  # creates PlexSync's queue file and table
    serializer = queue._serializer
    queue.close()
    queued_ids = [scene_id for scene_id in range(1, entries + 1) if _is_queued(scene_id)]
    now = time.time()
    conn = sqlite3.connect(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME)
    try:
        with conn:
            conn.executemany(
                f"INSERT INTO {QUEUE_TABLE} (data, timestamp, status) VALUES (?, ?, 0)",
                (
                    (serializer.dumps({"job_id": _BASE_JOB_ID + 10_000_000 + scene_id, "scene_id": scene_id,
                                       "update_type": "metadata", "data": {"title": f"Scene {scene_id}"},
                                       "enqueued_at": now, "job_key": f"scene_{scene_id}"}), now)
                    for scene_id in queued_ids
                ),
            )
    finally:
        conn.close()
    deleted = sum(1 for scene_id in range(1, entries + 1) if _is_deleted(scene_id))
    return Dataset(entries, noise, deleted, len(queued_ids), WINDOW_START, WINDOW_START + WINDOW_SECONDS)


# -- one path, in a worker process --------------------------------------------------------------


@dataclass
class PathRun:
    """One timed recovery, as measured inside its worker process.

    Attributes:
        path: ``"batched"`` or ``"per-entry"``.
        entries: In-window entries the run was given.
        seconds: ``outage_ended.send`` to ``recovery_completed``.
        entries_per_second: ``entries / seconds``.
        peak_rss_mb: The worker's peak RSS after the run, in MiB (its whole life: imports,
            clients and the run; see ``_rss_mb``).
        baseline_rss_mb: The worker's peak RSS just before the run (imports, clients).
        result: The ``RecoveryResult`` counts, without ``run_id`` and ``plex_latency_ms``;
            ``recovered_scene_ids`` is replaced by its length and a digest.
        queue_rows: Rows in the queue table after the run.
        stash_requests: Root fields the Stash server resolved during the run, by name.
        error: Why the run failed, or ``""``.
    """

    path: str
    entries: int
    seconds: float = 0.0
    entries_per_second: float = 0.0
    peak_rss_mb: float = 0.0
    baseline_rss_mb: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    queue_rows: int = 0
    stash_requests: dict[str, int] = field(default_factory=dict)
    error: str = ""


def _rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    On Linux it is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would do, but the
    kernel seeds a freshly exec'ed child's ``ru_maxrss`` with the high-water mark of the
    address space it replaced, which for a vfork-ed child (``subprocess`` uses vfork) is
    the parent's, here the process holding the test servers. Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _result_summary(result: Any) -> dict[str, Any]:
    summary = asdict(result)
    summary.pop("run_id", None)
    summary.pop("plex_latency_ms", None)
    scene_ids = summary.pop("recovered_scene_ids")
    summary["recovered_scene_ids_count"] = len(scene_ids)
    summary["recovered_scene_ids_sha1"] = hashlib.sha1(",".join(map(str, scene_ids)).encode()).hexdigest()
    return summary


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one path's recovery in this process and return a ``PathRun`` as a dict."""
    from plexapi.server import PlexServer
    from stashapi.stashapp import StashInterface

    from .plugin import RecoveryPlugin
    from .signals import outage_ended, recovery_completed, recovery_failed
    from .sync_queue.dlq_recovery import seed_collaborators
    from .sync_queue.recovery_collaborators import default_collaborators

    data_dir = Path(spec["data_dir"])
    run = PathRun(path=spec["path"], entries=spec["entries"])
    stash = StashInterface({**spec["stash_connection"], "Logger": logging.getLogger(f"{__name__}.stashapi")})
    plex = PlexServer(spec["plex_url"], spec["plex_token"])  # type: ignore[no-untyped-call]
    dlq = DeadLetterQueue(data_dir)
    queue = open_queue(data_dir)
    outcome: dict[str, Any] = {}

    def on_completed(sender: Any, **kwargs: Any) -> None:
        outcome.setdefault("at", time.perf_counter())
        outcome.setdefault("result", kwargs.get("result"))

    def on_failed(sender: Any, **kwargs: Any) -> None:
        outcome.setdefault("at", time.perf_counter())
        outcome.setdefault("error", kwargs.get("error"))

    recovery_completed.connect(on_completed, weak=False)
    recovery_failed.connect(on_failed, weak=False)
    factory = default_collaborators if spec["path"] == "batched" else seed_collaborators
    plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir, collaborators=factory)
    run.baseline_rss_mb = _rss_mb()
    try:
        with plugin:
            started = time.perf_counter()
            outage_ended.send("bench", start=spec["start"], end=spec["end"])
        run.peak_rss_mb = _rss_mb()
    finally:
        queue.close()
        stash.s.close()
        plex._session.close()
    if "result" not in outcome:
        run.error = f"recovery failed: {outcome.get('error')!r}"
        return asdict(run)
    run.seconds = outcome["at"] - started
    run.entries_per_second = run.entries / run.seconds if run.seconds > 0 else 0.0
    run.result = _result_summary(outcome["result"])
    conn = sqlite3.connect(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME)
    try:
        run.queue_rows = int(conn.execute(f"SELECT COUNT(*) FROM {QUEUE_TABLE}").fetchone()[0])
    finally:
        conn.close()
    return asdict(run)


def _worker_main() -> int:
    """Entry point of ``python -m plexsync_recovery_plugin.bench``: a spec on stdin, a ``PathRun`` on stdout.

    The spec travels on stdin, not argv, so the Plex token never shows in a process list.
    """
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(_worker(spec)) + "\n")
    return 0


def _run_worker(spec: dict[str, Any], timeout: float | None) -> PathRun:
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return PathRun(path=spec["path"], entries=spec["entries"], error=f"timed out after {timeout} s")
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return PathRun(path=spec["path"], entries=spec["entries"], error=f"worker exited {done.returncode}: {last}")
    return PathRun(**json.loads(done.stdout.strip().splitlines()[-1]))


# -- the whole bench --------------------------------------------------------------------------------


@dataclass
class BenchReport:
    """Both paths over the same data.

    Attributes:
        entries: In-window entries per run.
        noise: Other entries in the DLQ.
        deleted: Scenes deleted from Stash.
        queued: Scenes already queued.
        build_seconds: Time to write the data directory once.
        runs: One ``PathRun`` per path, in run order.
        ratio: Per-entry seconds / batched seconds (0.0 unless both ran).
        same_result: Whether every path that ran reported the same result and queue size.
    """

    entries: int
    noise: int
    deleted: int
    queued: int
    build_seconds: float
    runs: list[PathRun]
    ratio: float = 0.0
    same_result: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def run_bench(
    entries: int,
    paths: Sequence[str] = BENCH_PATHS,
    *,
    work_dir: str | Path | None = None,
    timeout: float | None = None,
) -> BenchReport:
    """Build the data once, then time each path in its own worker process and fresh data copy.

    Args:
        entries: In-window ``PlexServerDown`` entries (as many others are added).
        paths: Any of ``BENCH_PATHS``, run in the order given.
        work_dir: Where to build the data directories; a temporary directory (removed
            afterwards) when None.
        timeout: Seconds each worker may take; no limit when None.

    Returns:
        The report; a path whose worker failed has ``error`` set.

    Raises:
        ValueError: ``entries`` is below 1, or a path is unknown or repeated.
    """
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
        raise ValueError(f"entries must be a positive integer, got {entries!r}")
    unknown = [path for path in paths if path not in BENCH_PATHS]
    if unknown or not paths or len(set(paths)) != len(paths):
        raise ValueError(f"paths must be distinct names among {', '.join(BENCH_PATHS)}, got {list(paths)!r}")
    from .testing import PlexTestServer, StashTestServer

    logger.info("bench: building a DLQ of %d in-window entries and %d others", entries, entries)
    with tempfile.TemporaryDirectory(prefix="plexsync-bench-", dir=work_dir) as tmp:
        template = Path(tmp) / "template"
        started = time.perf_counter()
        dataset = build_data_dir(template, entries)
        build_seconds = time.perf_counter() - started
        runs: list[PathRun] = []
        with StashTestServer(scenes=dataset.stash_scene_ids()) as stash, PlexTestServer() as plex:
            for path in paths:
                data_dir = Path(tmp) / path
                shutil.copytree(template, data_dir)
                spec = {
                    "path": path,
                    "entries": entries,
                    "data_dir": str(data_dir),
                    "stash_connection": stash.connection(),
                    "plex_url": plex.url,
                    "plex_token": plex.token,
                    "start": dataset.start,
                    "end": dataset.end,
                }
                before = stash.operation_counts
                logger.info("bench: timing the %s path over %d entries", path, entries)
                run = _run_worker(spec, timeout)
                after = stash.operation_counts
                run.stash_requests = {name: after[name] - before[name] for name in after if after[name] != before[name]}
                runs.append(run)
                shutil.rmtree(data_dir, ignore_errors=True)
    report = BenchReport(entries, dataset.noise, dataset.deleted, dataset.queued, build_seconds, runs)
    timings = {run.path: run.seconds for run in runs if not run.error}
    if timings.get("batched") and "per-entry" in timings:
        report.ratio = timings["per-entry"] / timings["batched"]
    outcomes = [(run.result, run.queue_rows) for run in runs]
    report.same_result = all(not run.error for run in runs) and all(outcome == outcomes[0] for outcome in outcomes)
    return report


if __name__ == "__main__":
    sys.exit(_worker_main())
