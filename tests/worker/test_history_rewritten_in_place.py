"""Reading ``outage_history.json`` while another process rewrites it in place (truncate, then write).

A second process rewrites the file in a loop, flushing half of it before the rest, as a
writer without an atomic replace does. Every reader must return the whole valid history
every time, and none may move, rename or rewrite the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from plexsync_recovery_plugin.outages import plexsync_outages
from plexsync_recovery_plugin.worker.history_follower import HistoryFollower
from plexsync_recovery_plugin.worker import outage_history
from plexsync_recovery_plugin.worker.outage_history import OutageHistory, read_history_file

RECORDS = [
    {"started_at": 1000.0 + 100 * n, "ended_at": 1050.0 + 100 * n, "duration": 50.0, "jobs_affected": n} for n in range(30)
]
READS = 400

_WRITER = textwrap.dedent(
    """
    import sys, time
    path, text = sys.argv[1], sys.stdin.read()
    half = len(text) // 2
    while True:
        with open(path, "w", encoding="utf-8") as handle:  # truncates, then writes
            handle.write(text[:half])
            handle.flush()
            handle.write(text[half:])
        time.sleep(0.005)
    """
)


@pytest.fixture
def rewriter(data_dir):
    path = data_dir / "outage_history.json"
    text = json.dumps(RECORDS, indent=2)
    path.write_text(text)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdin=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(text)
    proc.stdin.close()
    time.sleep(0.1)  # let it start rewriting
    try:
        yield path
    finally:
        proc.kill()
        proc.wait()


def test_readers_never_see_a_half_written_history_nor_move_it(data_dir, rewriter):
    torn = reads = 0  # raw reads that caught the file half written: the hazard is real
    deadline = time.monotonic() + 10.0
    while reads < READS or (torn == 0 and time.monotonic() < deadline):
        try:
            json.loads(rewriter.read_bytes())
        except ValueError:
            torn += 1
        assert read_history_file(rewriter) == RECORDS
        reads += 1
    history = OutageHistory(data_dir)
    for _ in range(20):
        assert history.get_history() == RECORDS
        assert len(plexsync_outages(data_dir)) == len(RECORDS)
    follower = HistoryFollower(data_dir)
    follower.start()
    assert follower.poll() == []
    assert torn > 0
    assert sorted(path.name for path in data_dir.iterdir()) == ["outage_history.json", "recovery_state.db"]


def test_garbage_that_stays_garbage_is_judged_quickly(data_dir, monkeypatch):
    path = data_dir / "outage_history.json"
    path.write_text('[{"started_at": 1.0, "ended_')
    paused: list[float] = []
    monkeypatch.setattr(outage_history.time, "sleep", paused.append)  # the pauses it chose, not the clock
    assert read_history_file(path) == []
    monkeypatch.undo()
    assert sum(paused) < 0.5 and len(paused) < len(outage_history.REREAD_PAUSES)  # not the whole wait (~0.5 s)
    assert path.read_text() == '[{"started_at": 1.0, "ended_'
