"""No doubles while PlexSync keeps queueing: the dedup check is made inside the write.

The "already queued" gate used to read the queue once, at the start of the run: a scene
PlexSync queued after that, before the run reached its entry, got a second job (897 of
1,000 such scenes in a 50,000-entry run). Here a producer process queues jobs for the
scenes of the window while a recovery of 5,000 entries runs in small chunks, behind a
Stash that takes a little time per chunk (so the producer gets ahead of the run). No
scene may end with the run's job queued after PlexSync's own.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from plexsync_recovery_plugin import engine
from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue import dlq_recovery
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from tests.conftest import WINDOW_END, WINDOW_START
from tests.reliability.helpers import HealthyPlex, PlainStash, insert_dlq_rows, ledger_rows, queue_rows

pytestmark = pytest.mark.slow

PRODUCER = Path(__file__).with_name("live_producer.py")
ENTRIES = 5000


class SlowStash(PlainStash):
    """Every scene exists; each hundredth ``find_scene`` takes a moment; scene 1,000 calls ``on_tenth_chunk``."""

    def __init__(self, on_tenth_chunk: Callable[[], None]) -> None:
        super().__init__()
        self.on_tenth_chunk = on_tenth_chunk

    def find_scene(self, scene_id: int) -> dict[str, str] | None:
        if scene_id == 1000:
            # Stash is asked about chunk 10 while chunk 9 is written: the run is well under way.
            self.on_tenth_chunk()
        if scene_id % 100 == 0:
            time.sleep(0.01)
        return super().find_scene(scene_id)


def test_scenes_queued_by_plexsync_during_the_run_get_no_second_job(data_dir, dlq, queue, tmp_path, mocker):
    rows = [{"scene_id": n, "failed_at": WINDOW_START + n * 1800 // ENTRIES} for n in range(1, ENTRIES + 1)]
    insert_dlq_rows(data_dir / "dlq.db", rows)  # scene n is the n-th entry of the run
    rng = random.Random(5)
    produced = rng.sample(range(1, ENTRIES + 1), k=1000)
    scenes_file = tmp_path / "scenes"
    scenes_file.write_text("\n".join(map(str, produced)))
    producer = subprocess.Popen([sys.executable, str(PRODUCER), str(data_dir), str(scenes_file)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert producer.stdout is not None and producer.stdin is not None
    assert producer.stdout.readline() == "ready\n"
    mocker.patch.object(engine, "RECOVERY_CHUNK", 100)

    def go() -> None:
        producer.stdin.write("go\n")
        producer.stdin.flush()

    stash = SlowStash(go)
    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown"])
    result = dlq_recovery.recover_outage_jobs(window, queue, stash, HealthyPlex(), data_dir,
                                              collaborators=default_collaborators(queue.path, queue, stash))
    out, _ = producer.communicate(timeout=30)
    assert out == "done\n"

    rows = queue_rows(data_dir)
    first_row: dict[int, int] = {}
    for row in rows:
        first_row.setdefault(row["job"]["scene_id"], row["_id"])
    ours = {record["queue_row_id"] for record in ledger_rows(data_dir) if record["queue_row_id"] is not None}
    doubles = [row["job"]["scene_id"] for row in rows
               if row["_id"] in ours and first_row[row["job"]["scene_id"]] < row["_id"]]
    assert doubles == []
    assert result.recovered + result.skipped_already_queued == ENTRIES
    # The race was real: some of PlexSync's jobs landed after the run had started writing.
    first_ours = min(ours)
    assert any(row["_id"] > first_ours and row["_id"] not in ours for row in rows)
