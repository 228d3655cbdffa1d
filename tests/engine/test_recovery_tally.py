"""The engine's running tally: what progress reports mid-run is what the frozen result says at the end."""

from __future__ import annotations

from plexsync_recovery_plugin.engine import Outcome, RecoveryTally


def test_the_running_counts_are_the_frozen_results_counts() -> None:
    tally = RecoveryTally("run")
    outcomes = [Outcome.RECOVERED] * 5 + [Outcome.ALREADY_QUEUED] * 3 + [Outcome.SCENE_MISSING, Outcome.FAILED,
                                                                         Outcome.STASH_ERROR, Outcome.PLEX_DOWN]
    for number, outcome in enumerate(outcomes, start=1):
        tally.seen += 1
        tally.count({"id": number}, outcome, "", number)
    running = tally.field_counts()
    frozen = tally.freeze()
    assert running == frozen.counts()
    assert running["total_dlq_entries"] == 12 and running["recovered"] == 5 and running["skipped_already_queued"] == 3
    assert list(frozen.recovered_scene_ids) == [1, 2, 3, 4, 5]
