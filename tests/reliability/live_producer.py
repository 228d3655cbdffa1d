"""PlexSync's producer in a process of its own: queue a job for each given scene, as fast as it can.

Usage: ``python live_producer.py DATA_DIR SCENES_FILE``. It prints ``ready``, waits for a
line on stdin, then puts one PlexSync job per scene id of ``SCENES_FILE`` (one per line)
through its own ``SQLiteAckQueue``, and prints ``done`` when all are in.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from persistqueue import SQLiteAckQueue


def main(argv: list[str]) -> int:
    scenes = [int(line) for line in Path(argv[2]).read_text().split()]
    queue = SQLiteAckQueue(str(Path(argv[1]) / "queue"), auto_resume=False, timeout=30)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    for scene_id in scenes:
        queue.put({"job_id": scene_id, "scene_id": scene_id, "update_type": "metadata", "data": {"by": "PlexSync"},
                   "enqueued_at": time.time(), "job_key": f"scene_{scene_id}"})
    queue.close()
    sys.stdout.write("done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
