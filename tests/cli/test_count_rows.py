"""Every command's table of a recovery is ``RecoveryResult.counts()``, labelled in one place."""

from __future__ import annotations

from dataclasses import replace

from plexsync_recovery_plugin.engine import RecoveryResult
from plexsync_recovery_plugin.engine import count_rows


def test_rows_follow_the_results_counts_in_order_with_run_and_dry_run_labels():
    result = RecoveryResult(total_dlq_entries=9, recovered=3, skipped_already_queued=2, skipped_scene_missing=1,
                            skipped_stash_error=1, skipped_plex_down=1, failed=1)
    rows = count_rows(result)
    assert [value for _, value in rows] == list(result.counts().values()) == [9, 3, 2, 1, 1, 1, 1]
    assert [label for label, _ in rows] == ["DLQ entries in window", "recovered", "already queued", "scene missing",
                                            "stash error (deferred)", "plex down (deferred)", "failed"]
    dry = dict(count_rows(replace(result, dry_run=True)))
    assert (dry["would recover"], dry["failed"]) == (3, 1)  # one word for a failed entry, run or dry run
