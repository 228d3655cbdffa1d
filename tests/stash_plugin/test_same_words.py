"""The Stash tasks and the CLI print one vocabulary: the same word for each outcome, in a dry run
and in a run, and counts that read well. Both doors run as processes over the same PlexSync files."""

from __future__ import annotations

import json
import subprocess
import sys

from plexsync_recovery_plugin.formatting import iso_time
from plexsync_recovery_plugin.testing import StashTestServer
from tests.conftest import WINDOW_START
from tests.stash_plugin.conftest import OUTAGE, PLEX_TOKEN, REPO, write_history


def _cli(plugin_env, data_dir, plex_url, stash_url, *flags):
    start, end = OUTAGE
    done = subprocess.run(
        [sys.executable, "-m", "plexsync_recovery_plugin", "recover", "--json", "--data-dir", str(data_dir),
         "--start", str(start), "--end", str(end), "--plex-url", plex_url, "--plex-token", PLEX_TOKEN,
         "--stash-url", stash_url, *flags],
        env={key: value for key, value in plugin_env.items() if not key.startswith("PLEX")}, cwd=REPO,
        capture_output=True, text=True, timeout=60,
    )
    return done, json.loads(done.stdout)


def test_a_preview_and_a_dry_run_name_each_outcome_alike(run_plugin, plugin_env, data_dir, plexsync_dir, add_entry,
                                                         plex_server):
    write_history(data_dir, OUTAGE)
    would = add_entry(1, failed_at=WINDOW_START + 1)
    broken = plexsync_dir.add_dead_letter({}, scene_id=None, job_data=b"\x00\xff", error_message="bad",
                                          error_type="PlexServerDown", failed_at="2026-02-15 19:00:04")
    missing = add_entry(9, failed_at=WINDOW_START + 5)

    task = run_plugin(mode="preview_last_outage")
    with StashTestServer(scenes=range(1, 6)) as cli_stash:
        dry, report = _cli(plugin_env, data_dir, plex_server.url, cli_stash.url, "--dry-run")

    assert dry.returncode == 1 and "dry run: 1 entry failed" in dry.stderr
    words = {row["id"]: row["outcome"] for row in report["entries"]}
    assert words == {would: "would recover", broken: "failed", missing: "scene missing"}
    for dlq_id, word in words.items():  # the task logs each entry with the same word
        assert any(f"DLQ entry {dlq_id} (" in line and line.split(" - ")[0].endswith(f": {word}")
                   for line in task.texts("i")), task.stderr
    assert task.answer["output"] == ("preview: would recover 1 of 3 DLQ entries"
                                     " (already queued 0, scene missing 1, stash error 0, plex down 0, failed 1)")


def test_a_run_counts_in_words_that_agree(run_plugin, data_dir, add_entry, plex_server, stash_server):
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 1)

    task = run_plugin(mode="recover_last_outage")

    assert task.code == 0, task.stderr
    assert task.answer["output"] == "recovery: 1 job recovered; 0 windows pending"
    assert any("recovered 1 of 1 DLQ entry (" in line for line in task.texts("i")), task.stderr
    [event] = task.answer["events"]  # the run's event, as ``watch --json`` prints it
    window = {"start": iso_time(OUTAGE[0]), "end": iso_time(OUTAGE[1])}
    assert event["event"] == "recovery_completed" and {"start": event["start"], "end": event["end"]} == window
    assert event["searched"] == window and event["result"]["recovered"] == 1 and event["result"]["dry_run"] is False
