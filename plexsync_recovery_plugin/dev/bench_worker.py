"""One timed recovery path, run in its own process, and where its time went: ``python -m plexsync_recovery_plugin.dev.bench_worker``.

Why a process per path: peak RSS is a per-process high-water mark that never goes down, so
each path is measured in a fresh interpreter with its own copy of the data. The spec comes
on stdin (never argv, so the Plex token does not show in a process list) and one
``PathRun`` goes back on stdout as JSON. Inside the worker only, the collaborators the run
is given are wrapped to time each phase (Plex check, queue snapshot, Stash lookup, decode,
DLQ window, chunk writes), measured from outside the engine.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import resource
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO, TypeVar

from ..sync_queue.dlq import DeadLetterQueue
from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, QUEUE_TABLE, open_queue
from .bench_live_worker import LiveWorker

__all__ = ['OVERLAPPING', 'PHASES', 'PhaseClock', 'TimedEntries', 'time_decoding', 'time_window', 'timed_factory', 'LIVE_BASELINE_SECONDS', 'PathRun', 'run_path']


# ==== bench phases ==============================================================================
# Where a timed recovery spends its time, measured from outside the engine.
#
# Why: "recovery took 1.8 s" does not say what to optimize next. Inside a bench worker
# process only, :func:`timed_factory` wraps the collaborators a run is given (the Plex health
# check, the queue snapshot, the Stash lookup, the job writer and the queue file's ledger read
# and chunk transaction), :func:`time_window` the DLQ window it reads, and
# :func:`time_decoding` the engine's ``decode_entry_job``, each with a stopwatch. The engine
# itself is not edited; a collaborator it no longer uses simply reads 0.

#: The run's phases, in the order a chunk meets them.
PHASES = ("plex_health", "queue_snapshot", "dlq_read", "decode", "ledger_read", "stash_lookup", "write")
#: Phases timed on the engine's Stash thread, while the main thread screens and writes other
#: chunks: they overlap the rest, so ``other`` does not subtract them (waiting for Stash is in ``other``).
OVERLAPPING = ("stash_lookup",)
#: Entries read from the window per stopwatch reading (one reading per entry would cost more than the read).
_READ_BATCH = 256

F = TypeVar("F", bound=Callable[..., Any])


class PhaseClock:
    """Seconds per phase, plus the chunk transactions (part of ``write``) and the longest one.

    Attributes:
        seconds: Seconds spent in each of :data:`PHASES`.
        transaction_seconds: Seconds the chunk transactions held the queue's write lock
            (``BEGIN IMMEDIATE`` returned to ``COMMIT`` done; within ``write``).
        transactions: How many chunk transactions ran.
        longest_transaction: The longest hold, seconds (what PlexSync's worker may wait).
        longest_lock_wait: The longest a transaction waited for the lock, seconds (PlexSync had it).
    """

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.transaction_seconds = 0.0
        self.transactions = 0
        self.longest_transaction = 0.0
        self.longest_lock_wait = 0.0

    def timed(self, phase: str, function: F) -> F:
        """``function`` with each call's duration added to ``phase``."""
        seconds = self.seconds

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - began

        return wrapper  # type: ignore[return-value]

    def timed_transaction(self, queue_file: Any) -> Callable[..., Any]:
        """``queue_file.write_chunk`` with the time each call held the write lock (and waited for it) counted."""
        write_chunk = queue_file.write_chunk

        @functools.wraps(write_chunk)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            reasons = write_chunk(*args, **kwargs)
            waited, held = queue_file.last_lock_seconds
            self.transaction_seconds += held
            self.transactions += 1
            self.longest_transaction = max(self.longest_transaction, held)
            self.longest_lock_wait = max(self.longest_lock_wait, waited)
            return reasons

        return wrapper

    def report(self, total: float) -> dict[str, Any]:
        """Plain figures: each phase's seconds, ``other`` (the rest of ``total`` beside the main thread's phases), the transactions."""
        phases = {name: round(value, 6) for name, value in self.seconds.items()}
        phases["other"] = round(total - sum(value for name, value in self.seconds.items() if name not in OVERLAPPING), 6)
        return {"phases": phases, "transaction_seconds": round(self.transaction_seconds, 6),
                "transactions": self.transactions, "longest_transaction_ms": round(self.longest_transaction * 1000, 3),
                "longest_lock_wait_ms": round(self.longest_lock_wait * 1000, 3)}


def timed_factory(clock: PhaseClock, factory: Callable[..., Any]) -> Callable[..., Any]:
    """A collaborator factory giving ``factory``'s collaborators with stopwatches on their methods."""

    def build(*args: Any, **kwargs: Any) -> Any:
        made = factory(*args, **kwargs)
        _wrap_method(made.lookup, "statuses", clock.timed("stash_lookup", getattr(made.lookup, "statuses")))
        _wrap_method(made.writer, "flush", clock.timed("write", getattr(made.writer, "flush")))
        queue_file = made.queue_file
        _wrap_method(queue_file, "ledger_records", clock.timed("ledger_read", queue_file.ledger_records))
        _wrap_method(queue_file, "write_chunk", clock.timed_transaction(queue_file))
        writer_file = getattr(made.writer, "queue_file", None)
        if writer_file is not None and writer_file is not queue_file:
            _wrap_method(writer_file, "write_chunk", clock.timed_transaction(writer_file))
        return dataclasses.replace(
            made,
            plex_health=clock.timed("plex_health", made.plex_health),
            queue_state=clock.timed("queue_snapshot", made.queue_state),
        )

    return build


def _wrap_method(owner: Any, name: str, wrapped: Callable[..., Any]) -> None:
    """Shadow ``owner.name`` with ``wrapped`` on this instance only."""
    setattr(owner, name, wrapped)


class TimedEntries:
    """A window of entries whose reads (``len()`` and iteration) are timed as ``dlq_read``.

    Entries are pulled ``_READ_BATCH`` at a time so the stopwatch costs little; everything
    else (``start_time``, ...) is the wrapped window's.
    """

    def __init__(self, window: Any, clock: PhaseClock) -> None:
        self._window = window
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._window, name)

    def __len__(self) -> int:
        began = time.perf_counter()
        try:
            return len(self._window)
        finally:
            self._clock.seconds["dlq_read"] += time.perf_counter() - began

    def __iter__(self) -> Iterator[Any]:
        seconds = self._clock.seconds
        rows = iter(self._window)
        while True:
            began = time.perf_counter()
            batch = list(islice(rows, _READ_BATCH))
            seconds["dlq_read"] += time.perf_counter() - began
            if not batch:
                return
            yield from batch


def time_window(plugin: Any, clock: PhaseClock) -> None:
    """Make ``plugin`` (this instance only) read its windows through :class:`TimedEntries`."""
    window_entries = plugin.window_entries
    plugin.window_entries = lambda start, end: TimedEntries(window_entries(start, end), clock)


def time_decoding(clock: PhaseClock) -> Callable[[], None]:
    """Time the engine's ``decode_entry_job`` (in this process); return what undoes it."""
    from .. import engine

    original = getattr(engine, "decode_entry_job", None)
    if original is None:  # the engine no longer decodes through this name: decoding counts as "other"
        return lambda: None
    engine.decode_entry_job = clock.timed("decode", original)  # type: ignore[attr-defined]

    def undo() -> None:
        engine.decode_entry_job = original  # type: ignore[attr-defined]

    return undo


# ==== bench worker ==============================================================================
# One timed recovery path, run in its own process: ``python -m plexsync_recovery_plugin.dev.bench_worker``.
#
# Why a process per path: peak RSS is a per-process high-water mark that never goes down, so
# each path is measured in a fresh interpreter with its own copy of the data. The spec comes
# on stdin (never argv, so the Plex token does not show in a process list) and one
# ``PathRun`` goes back on stdout as JSON. :mod:`.bench` starts the workers.

#: How long PlexSync's worker (``--live-worker``) runs alone before the outage ends.
LIVE_BASELINE_SECONDS = 1.0

@dataclass
class PathRun:
    """One timed recovery, as measured inside its worker process.

    Attributes:
        path: ``"batched"`` or ``"per-entry"``.
        entries: In-window entries the run was given.
        seconds: ``outage_ended.send`` to ``recovery_completed``.
        cpu_seconds: CPU time (user + system) this process spent in those ``seconds``, all
            its threads: close to ``seconds`` when the run computes all along, well below
            when it waits (for Stash, for the disk, for a lock).
        entries_per_second: ``entries / seconds``.
        peak_rss_mb: The worker's peak RSS after the run, in MiB (its whole life: imports,
            clients and the run; see ``_rss_mb``).
        baseline_rss_mb: The worker's peak RSS just before the run (imports, clients).
        result: The ``RecoveryResult`` counts, without ``run_id`` and ``plex_latency_ms``;
            ``recovered_scene_ids`` is replaced by its length and a digest.
        queue_rows: Rows in the queue table after the run.
        stash_requests: Root fields the Stash server resolved during the run, by name.
        phases: Seconds per phase (``PHASES``) and ``other``, the rest of ``seconds``.
        transaction_seconds: Seconds the chunk transactions held the queue's write lock (part of ``write``).
        transactions: How many chunk transactions the run made (0 on the per-entry path).
        longest_transaction_ms: The longest hold: what PlexSync's worker may have to wait.
        longest_lock_wait_ms: The longest a chunk waited for the lock while PlexSync held it.
        live_worker: With ``--live-worker``: what PlexSync's worker in another process saw
            (``bench_live_worker.LiveWorkerReport`` as a dict), else None.
        error: Why the run failed, or ``""``.
    """

    path: str
    entries: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    entries_per_second: float = 0.0
    peak_rss_mb: float = 0.0
    baseline_rss_mb: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    queue_rows: int = 0
    stash_requests: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    transaction_seconds: float = 0.0
    transactions: int = 0
    longest_transaction_ms: float = 0.0
    longest_lock_wait_ms: float = 0.0
    live_worker: dict[str, Any] | None = None
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
    # A recovery reads its window in scene order: ascending even when the failures scattered the ids.
    summary["recovered_scene_ids_ascending"] = all(a < b for a, b in zip(scene_ids, scene_ids[1:]))
    return summary


class _FirstOutcome:
    """Receives ``recovery_completed`` / ``recovery_failed``: the first time either came, the first result and error."""

    def __init__(self) -> None:
        self.at = 0.0
        self.result: Any = None
        self.error: Any = None

    def on_completed(self, sender: Any, **kwargs: Any) -> None:
        self.at = self.at or time.perf_counter()
        self.result = self.result if self.result is not None else kwargs.get("result")

    def on_failed(self, sender: Any, **kwargs: Any) -> None:
        self.at = self.at or time.perf_counter()
        self.error = self.error if self.error is not None else kwargs.get("error")


def _timed_recovery(spec: dict[str, Any], run: PathRun, outcome: _FirstOutcome, clock: PhaseClock) -> float:
    """Send ``outage_ended`` to a plugin over real clients; return when it was sent (``perf_counter``)."""
    from plexapi.server import PlexServer
    from stashapi.stashapp import StashInterface

    from ..engine import default_collaborators
    from ..plugin import RecoveryPlugin
    from ..signals import outage_ended, recovery_completed, recovery_failed
    from ..sync_queue.dlq_recovery import seed_collaborators

    data_dir = Path(spec["data_dir"])
    stash = StashInterface({**spec["stash_connection"], "Logger": logging.getLogger(f"{__name__}.stashapi")})
    plex = PlexServer(spec["plex_url"], spec["plex_token"])  # type: ignore[no-untyped-call]
    queue = open_queue(data_dir)
    recovery_completed.connect(outcome.on_completed, weak=False)
    recovery_failed.connect(outcome.on_failed, weak=False)
    factory = timed_factory(clock, default_collaborators if spec["path"] == "batched" else seed_collaborators)
    plugin = RecoveryPlugin(DeadLetterQueue(data_dir), queue, stash, plex, data_dir, collaborators=factory)
    time_window(plugin, clock)
    undo_decoding = time_decoding(clock)
    live = LiveWorker(data_dir) if spec.get("live_worker") else None
    if spec.get("progress"):
        _draw_progress(plugin, _Terminal())
    if spec.get("show_progress"):
        _draw_progress(plugin, sys.stderr)
    run.baseline_rss_mb = _rss_mb()
    try:
        if live is not None:
            live.start()  # PlexSync's worker takes jobs alone for a while: its baseline
            time.sleep(LIVE_BASELINE_SECONDS)
        with plugin:
            if live is not None:
                live.mark()
            run.cpu_seconds = -_cpu_seconds()
            started = time.perf_counter()
            outage_ended.send("bench", start=spec["start"], end=spec["end"])
            run.cpu_seconds += _cpu_seconds()
        if live is not None:
            run.live_worker = asdict(live.stop())
        run.peak_rss_mb = _rss_mb()
    finally:
        if live is not None:
            live.close()
        undo_decoding()
        queue.close()
        stash.s.close()
        plex._session.close()
    return started


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Terminal(io.StringIO):
    """Where the measured progress bar draws: a terminal that keeps nothing but its text."""

    def isatty(self) -> bool:
        return True


def _draw_progress(plugin: Any, stream: TextIO) -> None:
    """Draw ``recovery_progress`` as ``recover`` does on a terminal (into ``stream``)."""
    from ..formatting import ProgressBar
    from ..signals import recovery_progress

    recovery_progress.connect(ProgressBar(stream), sender=plugin, weak=False)


def _queue_rows(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {QUEUE_TABLE}").fetchone()[0])
    finally:
        conn.close()


def run_path(spec: dict[str, Any]) -> PathRun:
    """Run one path's recovery in this process, as the spec says, and measure it."""
    run = PathRun(path=spec["path"], entries=spec["entries"])
    outcome = _FirstOutcome()
    clock = PhaseClock()
    started = _timed_recovery(spec, run, outcome, clock)
    if outcome.result is None:
        run.error = f"recovery failed: {outcome.error!r}"
        return run
    run.seconds = outcome.at - started
    run.entries_per_second = run.entries / run.seconds if run.seconds > 0 else 0.0
    run.result = _result_summary(outcome.result)
    run.queue_rows = _queue_rows(Path(spec["data_dir"]))
    figures = clock.report(run.seconds)
    run.phases = figures["phases"]
    run.transaction_seconds = figures["transaction_seconds"]
    run.transactions = figures["transactions"]
    run.longest_transaction_ms = figures["longest_transaction_ms"]
    run.longest_lock_wait_ms = figures["longest_lock_wait_ms"]
    return run


def _worker_main() -> int:
    """Entry point of ``python -m plexsync_recovery_plugin.dev.bench_worker``: a spec on stdin, a ``PathRun`` on stdout."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(asdict(run_path(spec))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
