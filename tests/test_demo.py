"""The README's first command: the demo recovers a real outage under the watch loop."""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import time
from pathlib import Path

from plexsync_recovery_plugin.cli import main


def test_demo_recovers_and_skips_and_exits_zero(capsys):
    assert main(["demo", "--json", "--interval", "0.05"]) == 0  # the README command itself: the next test
    report = json.loads(capsys.readouterr().out)
    result = report["result"]
    assert report["signals"] == ["outage_started", "outage_ended", "recovery_completed"]
    assert result["recovered"] == 8
    assert result["recovered_scene_ids"] == [1, 2, 4, 6, 8, 10, 11, 12]
    assert result["skipped_already_queued"] == 3  # scenes 5 and 9 were queued; scene 11 twice
    assert result["skipped_scene_missing"] == 2  # scenes 3 and 7 deleted from Stash
    assert result["deferred"] is False
    queued = sorted(job["scene_id"] for job in report["queue"])
    assert queued == [1, 2, 4, 5, 6, 8, 9, 10, 11, 12]
    before, after = report["dlq_entries_before_after"]
    assert before == after == 18
    # The outage the watch loop recorded (in the plugin's own state): 15 entries failed inside it,
    # 13 of them of the types recovered by default (not the PlexAuthError or PlexTemporaryError one).
    outage = report["outage"]
    assert (outage["source"], outage["ongoing"], outage["jobs_affected"]) == ("watch", False, 13)
    started, ended = (calendar.timegm(time.strptime(outage[key], "%Y-%m-%dT%H:%M:%SZ")) for key in ("started_at", "ended_at"))
    assert 0 < outage["duration"] < 12 and abs((ended - started) - outage["duration"]) <= 1  # ISO times: whole seconds


def test_the_readme_demo_command_prints_its_report_and_exits_zero():
    """The README's first command as a person runs it: text output, no error line."""
    done = subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", "demo"], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr, done.stderr
    outage = next(line for line in done.stdout.splitlines() if line.startswith("Outage: "))
    assert outage.startswith("Outage: 20") and "T" in outage and "DLQ entries in the window" in outage
    assert "Done in" in done.stdout
