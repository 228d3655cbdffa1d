"""One process of the single-flight test: a connected ``RecoveryPlugin`` that fires one ``outage_ended``.

Usage: ``python outage_sender.py DATA_DIR START END DELETED_IDS``. It opens the real DLQ
and ``SQLiteAckQueue`` in ``DATA_DIR``, connects a plugin (plain in-process Stash missing
the comma-separated ``DELETED_IDS``, a healthy Plex), prints ``ready``, waits for one line
on stdin (the test's starting gun), sends ``outage_ended`` and prints, as JSON, every
recovery run it made (monotonic enter/exit times and recovered scenes) and every failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plexsync_recovery_plugin import RecoveryPlugin, engine, outage_ended, recovery_failed  # noqa: E402
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue  # noqa: E402
from plexsync_recovery_plugin.sync_queue.operations import open_queue  # noqa: E402
from tests.fakes import HealthyPlex, PlainStash, timed_runs  # noqa: E402


def main(argv: list[str]) -> int:
    data_dir, start, end = argv[1], float(argv[2]), float(argv[3])
    deleted = {int(text) for text in argv[4].split(",") if text}
    runs: list[dict] = []
    failures: list[str] = []
    engine.run_recovery = timed_runs(engine.run_recovery, runs)
    queue = open_queue(data_dir)
    plugin = RecoveryPlugin(DeadLetterQueue(data_dir), queue, PlainStash(deleted), HealthyPlex(), data_dir).connect()
    recovery_failed.connect(lambda sender, **kw: failures.append(str(kw["error"])), weak=False)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    outage_ended.send("process", start=start, end=end)
    plugin.disconnect()
    queue.close()
    sys.stdout.write(json.dumps({"runs": runs, "failures": failures}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
