"""A recovery run in a process of its own, for the crash test to kill at any moment.

Usage: ``python recovery_worker.py DATA_DIR START END CHUNK STASH [PATH]``, where ``STASH`` is
a StashTestServer URL (asked through ``StashConnection``, batched) or ``plain:<ids>`` for an
in-process Stash missing the comma-separated scene ids, and ``PATH`` is ``batched`` (the
plugin's collaborators, the default) or ``per-job`` (the seed's: claim, enqueue, mark done). It opens the real DLQ and the real
``SQLiteAckQueue``, prints ``started`` once everything is imported and opened (the test
starts its kill timer then), runs ``recover_outage_jobs`` with ``RECOVERY_CHUNK = CHUNK`` so
that a run is many small transactions, and prints the counts as JSON when it finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plexsync_recovery_plugin import StashConnection  # noqa: E402
from plexsync_recovery_plugin.sync_queue import dlq_recovery  # noqa: E402
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue  # noqa: E402
from plexsync_recovery_plugin.sync_queue.dlq_window import DlqWindow  # noqa: E402
from plexsync_recovery_plugin.sync_queue.operations import open_queue  # noqa: E402
from plexsync_recovery_plugin.sync_queue.recovery_collaborators import default_collaborators  # noqa: E402
from tests.fakes import HealthyPlex, PlainStash  # noqa: E402


def main(argv: list[str]) -> int:
    data_dir, start, end, chunk, stash_spec = argv[1], float(argv[2]), float(argv[3]), int(argv[4]), argv[5]
    dlq_recovery.RECOVERY_CHUNK = chunk
    if stash_spec.startswith("plain:"):
        stash = PlainStash({int(text) for text in stash_spec[len("plain:") :].split(",") if text})
    else:
        stash = StashConnection(stash_spec)
        stash.client()  # connect before the kill timer starts
    dlq = DeadLetterQueue(data_dir)
    queue = open_queue(data_dir)
    entries = DlqWindow(dlq, start, end, dlq_recovery.get_error_types_for_recovery())
    sys.stdout.write("started\n")
    sys.stdout.flush()
    per_job = len(argv) > 6 and argv[6] == "per-job"
    collaborators = None if per_job else default_collaborators(queue.path, queue, stash)
    result = dlq_recovery.recover_outage_jobs(entries, queue, stash, HealthyPlex(), data_dir, collaborators=collaborators)
    queue.close()
    sys.stdout.write(json.dumps({"recovered": result.recovered, "total": result.total_dlq_entries}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
