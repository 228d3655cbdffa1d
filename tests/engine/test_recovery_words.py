"""The words and figures every door prints come from ``recovery_result``: one outcome vocabulary,
counts that agree with their noun, the Plex latency rounded once at the source."""

from __future__ import annotations

from dataclasses import replace

from plexsync_recovery_plugin import engine as recovery_result
from plexsync_recovery_plugin.engine import Outcome, RecoveryResult


def test_counts_agree_with_their_noun():
    plural = recovery_result.plural
    assert [plural(n, "job") for n in (0, 1, 2)] == ["0 jobs", "1 job", "2 jobs"]
    assert [plural(n, "DLQ entry") for n in (1, 3)] == ["1 DLQ entry", "3 DLQ entries"]
    assert plural(1, "window") == "1 window" and plural(2, "day") == "2 days"


def test_a_failed_entry_has_one_word_in_a_run_and_a_dry_run():
    word = recovery_result.outcome_word
    assert word(Outcome.FAILED) == word(Outcome.FAILED, dry_run=True) == "failed"
    assert (word(Outcome.RECOVERED), word("recovered", dry_run=True)) == ("recovered", "would recover")
    assert recovery_result.OUTCOME_LABELS["failed"] == "failed"


def test_the_result_reads_well_for_one_entry():
    result = RecoveryResult(total_dlq_entries=1, recovered=1)
    assert str(result).startswith("recovered 1 of 1 DLQ entry (")
    assert str(replace(result, dry_run=True, recovered=0, failed=1)) == (
        "would recover 0 of 1 DLQ entry (already queued 0, scene missing 0, stash error 0, plex down 0, failed 1)")


def test_plex_latency_is_rounded_at_the_source():
    result = RecoveryResult(plex_latency_ms=4.440853000005518)
    assert result.plex_latency_ms == 4.4 and result.as_dict()["plex_latency_ms"] == 4.4
