"""Single flight: 8 threads and 4 processes end overlapping outages at once; each scene is queued once.

Every sender fires ``outage_ended`` at the same moment (threads meet at a ``Barrier``,
processes wait for a line on stdin that is written just before the barrier opens). The
recovery runs are timed from inside (monotonic clock, shared by all processes on Linux), so
the test also proves that no two runs overlapped. Budget: about 2 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plexsync_recovery_plugin import RecoveryPlugin, engine, outage_ended, recovery_completed
from tests.conftest import WINDOW_START
from tests.fakes import timed_runs
from tests.reliability.helpers import (
    HealthyPlex,
    PlainStash,
    Recorder,
    assert_ledger_matches_queue,
    dlq_rows,
    insert_dlq_rows,
    pending_scene_counts,
)

pytestmark = pytest.mark.slow

SENDER = Path(__file__).with_name("outage_sender.py")
THREADS = 8
PROCESSES = 4
ENTRIES = 1200


def _windows() -> list[tuple[float, float]]:
    """Twelve windows of 700 s, each starting 100 s after the previous: every pair overlaps a lot."""
    return [(WINDOW_START + 100 * k, WINDOW_START + 100 * k + 700) for k in range(THREADS + PROCESSES)]


def test_concurrent_outage_ends_queue_each_scene_once(data_dir, dlq, queue, mocker, failed):
    deleted = set(range(7, ENTRIES, 23))
    rows = [{"scene_id": n % 900 + 1, "failed_at": WINDOW_START + n * 1800 // ENTRIES} for n in range(ENTRIES)]
    rows += [{"scene_id": 5000 + n, "failed_at": WINDOW_START + n, "error_type": "PlexAuthError"} for n in range(50)]
    insert_dlq_rows(data_dir / "dlq.db", rows)
    eligible = {row["scene_id"] for row in rows if "error_type" not in row} - deleted
    dlq_before = dlq_rows(data_dir / "dlq.db")

    runs: list[dict] = []
    mocker.patch.object(engine, "run_recovery", side_effect=timed_runs(engine.run_recovery, runs)
    )
    windows = _windows()
    processes = [
        subprocess.Popen(
            [sys.executable, str(SENDER), str(data_dir), repr(start), repr(end), ",".join(map(str, sorted(deleted)))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start, end in windows[THREADS:]
    ]
    completed = Recorder()
    barrier = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def fire(start: float, end: float) -> None:
        try:
            barrier.wait(timeout=30)
            outage_ended.send("thread", start=start, end=end)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=fire, args=window) for window in windows[:THREADS]]
    with RecoveryPlugin(dlq, queue, PlainStash(deleted), HealthyPlex(), data_dir):
        with recovery_completed.connected_to(completed):
            for thread in threads:
                thread.start()
            for process in processes:
                assert process.stdout.readline() == "ready\n", process.stderr.read()
            for process in processes:  # the starting gun: all four are blocked reading stdin
                process.stdin.write("go\n")
                process.stdin.flush()
            barrier.wait(timeout=30)
            for thread in threads:
                thread.join(timeout=60)
            reports = []
            for process in processes:
                out, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
                reports.append(json.loads(out))

    assert errors == []
    assert failed.calls == []
    assert all(report["failures"] == [] for report in reports)
    all_runs = runs + [run for report in reports for run in report["runs"]]
    assert len(all_runs) >= THREADS + PROCESSES  # a sender may also run a window another left pending
    spans = sorted((run["enter"], run["exit"]) for run in all_runs)
    for (_, first_exit), (second_enter, _) in zip(spans, spans[1:]):
        assert first_exit <= second_enter, "two recovery runs overlapped"

    recovered = [scene for run in all_runs for scene in run["recovered"]]
    assert sorted(recovered) == sorted(eligible)  # each eligible scene recovered by exactly one run
    counts = pending_scene_counts(data_dir)
    assert set(counts) == eligible
    assert set(counts.values()) == {1}
    assert_ledger_matches_queue(data_dir, recovered_scenes=eligible)
    assert dlq_rows(data_dir / "dlq.db") == dlq_before
    assert RecoveryPlugin(dlq, queue, None, None, data_dir).pending_windows() == []
    assert len(completed.calls) >= THREADS  # every thread heard its own run complete
