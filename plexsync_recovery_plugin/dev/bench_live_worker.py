"""PlexSync's worker beside a recovery: ``python -m plexsync_recovery_plugin.dev.bench_live_worker``.

Why: a recovery writes PlexSync's queue while PlexSync's own worker keeps taking and acking
jobs from it in another process; each chunk transaction holds SQLite's write lock, and the
worker's ``get`` and ``ack`` wait for it. This process is that worker: it opens the queue as
PlexSync does (``SQLiteAckQueue``, ``timeout=30``), then loops ``get(block=False)`` and
``ack`` as fast as it can, timing every call, until told to stop. It reports the longest
single wait, the 99th percentile and how many jobs it took.

Its calls take time even when nothing else writes the queue (``get`` scans past every acked
row, as persist-queue has no index on ``status``), so it reports its waits before the
recovery began (the baseline) apart from those during it.

Protocol: the spec (``{"data_dir": ...}``) on stdin's first line; ``ready`` on stdout once
the queue is open; a line ``mark`` when the recovery begins; any other line (or end of
file) stops it; one :class:`LiveWorkerReport` as JSON on stdout. :class:`LiveWorker`
drives it from the bench worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["LiveWorker", "LiveWorkerReport", "summarize_waits"]

#: Pause after an empty ``get`` (PlexSync's worker also waits before it asks again).
_IDLE_PAUSE = 0.002
#: Never run longer than this, even if nobody says stop.
_MAX_SECONDS = 3600.0


@dataclass
class LiveWorkerReport:
    """What PlexSync's worker saw while a recovery ran beside it (milliseconds).

    Every figure but the ``baseline_*`` ones counts only calls begun after the ``mark``
    (the recovery's start); without a mark, all calls.

    Attributes:
        jobs_taken: Jobs it got (and acked).
        empty_gets: ``get`` calls that found the queue empty.
        operations: Every timed call (each ``get``, empty or not, and each ``ack``).
        longest_wait_ms: The longest single call.
        p99_wait_ms: The 99th percentile of all calls.
        longest_get_ms: The longest ``get``.
        longest_ack_ms: The longest ``ack``.
        longest_wait_cpu_ms: CPU time the worker itself spent in its longest call (persist-queue's
            own work, such as the ``get`` scan past acked rows); the rest of that call it waited
            for the lock (SQLite's busy handler sleeps between looks) or for a free core.
        seconds: How long it ran after the mark.
        baseline_operations: Calls before the mark (the queue alone, no recovery).
        baseline_jobs_taken: Jobs it got before the mark.
        baseline_longest_wait_ms: The longest of those calls.
        baseline_p99_wait_ms: Their 99th percentile.
        error: Why it stopped early, or ``""``.
    """

    jobs_taken: int = 0
    empty_gets: int = 0
    operations: int = 0
    longest_wait_ms: float = 0.0
    p99_wait_ms: float = 0.0
    longest_get_ms: float = 0.0
    longest_ack_ms: float = 0.0
    longest_wait_cpu_ms: float = 0.0
    seconds: float = 0.0
    baseline_operations: int = 0
    baseline_jobs_taken: int = 0
    baseline_longest_wait_ms: float = 0.0
    baseline_p99_wait_ms: float = 0.0
    error: str = ""


def summarize_waits(waits: list[float]) -> tuple[float, float]:
    """The longest and the 99th-percentile (nearest rank) of ``waits``, in the same unit (0 for none)."""
    if not waits:
        return 0.0, 0.0
    ordered = sorted(waits)
    rank = max(0, -(-99 * len(ordered) // 100) - 1)
    return ordered[-1], ordered[rank]


class _Calls:
    """Each timed call: when it began, how long it took (and of that, computing), and whether it was a ``get``, empty or a job."""

    def __init__(self) -> None:
        self.began: list[float] = []
        self.took: list[float] = []
        self.cpu: list[float] = []
        self.kind: list[str] = []  # "get", "empty" or "ack"

    def add(self, began: float, took: float, kind: str, cpu: float) -> None:
        self.began.append(began)
        self.took.append(took)
        self.cpu.append(cpu)
        self.kind.append(kind)

    def fill(self, report: LiveWorkerReport, mark: float, ended: float) -> None:
        """Put the figures of the calls begun after ``mark`` (and the baseline's) into ``report``."""
        split = next((index for index, began in enumerate(self.began) if began >= mark), len(self.began))
        before, after = self.took[:split], self.took[split:]
        kinds = self.kind[split:]
        report.baseline_operations = len(before)
        report.baseline_jobs_taken = self.kind[:split].count("ack")
        longest, p99 = summarize_waits(before)
        report.baseline_longest_wait_ms, report.baseline_p99_wait_ms = longest * 1000, p99 * 1000
        report.operations, report.jobs_taken, report.empty_gets = len(after), kinds.count("ack"), kinds.count("empty")
        longest, p99 = summarize_waits(after)
        report.longest_wait_ms, report.p99_wait_ms = longest * 1000, p99 * 1000
        report.longest_get_ms = max((t for t, k in zip(after, kinds) if k != "ack"), default=0.0) * 1000
        report.longest_ack_ms = max((t for t, k in zip(after, kinds) if k == "ack"), default=0.0) * 1000
        if after:
            longest_index = split + max(range(len(after)), key=after.__getitem__)
            report.longest_wait_cpu_ms = self.cpu[longest_index] * 1000
        report.seconds = max(0.0, ended - mark)


def _work(data_dir: Path, stop: threading.Event, marks: list[float], out: IO[str]) -> LiveWorkerReport:
    """Take and ack jobs until ``stop`` is set; time every call."""
    from persistqueue import Empty, SQLiteAckQueue

    report = LiveWorkerReport()
    queue = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False, timeout=30)
    out.write("ready\n")
    out.flush()
    calls = _Calls()
    began = time.perf_counter()
    try:
        while not stop.is_set() and time.perf_counter() - began < _MAX_SECONDS:
            asked, asked_cpu = time.perf_counter(), time.thread_time()
            try:
                item = queue.get(block=False)
            except Empty:
                calls.add(asked, time.perf_counter() - asked, "empty", time.thread_time() - asked_cpu)
                stop.wait(_IDLE_PAUSE)
                continue
            got, got_cpu = time.perf_counter(), time.thread_time()
            calls.add(asked, got - asked, "get", got_cpu - asked_cpu)
            queue.ack(item)
            calls.add(got, time.perf_counter() - got, "ack", time.thread_time() - got_cpu)
    except Exception as error:  # reported, not raised: the bench prints it beside the figures
        report.error = f"{type(error).__name__}: {error}"
    finally:
        queue.close()
    calls.fill(report, marks[0] if marks else began, time.perf_counter())
    return report


def _main() -> int:
    """Entry point: spec on stdin, ``ready``, work until a line other than ``mark`` or EOF, report on stdout."""
    spec = json.loads(sys.stdin.readline())
    stop = threading.Event()
    marks: list[float] = []

    def listen() -> None:
        while sys.stdin.readline().strip() == "mark":
            marks.append(time.perf_counter())
        stop.set()

    threading.Thread(target=listen, daemon=True).start()
    report = _work(Path(spec["data_dir"]), stop, marks, sys.stdout)
    sys.stdout.write(json.dumps(asdict(report)) + "\n")
    sys.stdout.flush()
    return 0


class LiveWorker:
    """Runs :func:`_main` in a child process: ``start()`` returns once its queue is open, ``stop()`` reports."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the worker and wait until it has opened the queue.

        Raises:
            RuntimeError: The worker did not start.
        """
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"data_dir": str(self.data_dir)}) + "\n")
        self._process.stdin.flush()
        if self._process.stdout.readline().strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"the live worker did not start (exit code {self._process.wait()})")

    def mark(self) -> None:
        """Tell the worker the recovery begins now: its calls from here on are the ones reported."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write("mark\n")
        self._process.stdin.flush()

    def stop(self, timeout: float = 60.0) -> LiveWorkerReport:
        """Tell the worker to stop and return its report (one with ``error`` set if it gave none)."""
        process = self._process
        if process is None:
            return LiveWorkerReport(error="never started")
        try:
            out, _ = process.communicate("stop\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return LiveWorkerReport(error=f"did not stop within {timeout} s")
        lines = out.strip().splitlines()
        if not lines:
            return LiveWorkerReport(error=f"exited {process.returncode} without a report")
        return LiveWorkerReport(**json.loads(lines[-1]))

    def __enter__(self) -> "LiveWorker":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill the worker if it still runs (after an error; ``stop()`` ends it normally)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    sys.exit(_main())
