"""Outage start and end from probes: thresholds, the dating rule, and flapping."""

from __future__ import annotations

import pytest

from plexsync_recovery_plugin.worker.watch import (
    DATED_FROM_FIRST_FAILURE,
    DATED_FROM_LAST_HEALTHY,
    OutageDetector,
    OutageEvent,
)

FIRST, HEALTHY = DATED_FROM_FIRST_FAILURE, DATED_FROM_LAST_HEALTHY


def feed(detector: OutageDetector, probes: str, start: float = 100.0, step: float = 5.0) -> list[OutageEvent]:
    """Feed probes written as a string: ``+`` healthy, ``-`` failed, one every ``step`` seconds."""
    events = []
    for index, mark in enumerate(probes):
        event = detector.observe(start + index * step, mark == "+")
        if event is not None:
            events.append(event)
    return events


def test_outage_is_dated_from_the_last_healthy_probe_before_the_failures():
    # Plex may have failed any time after the healthy probe at 105: a job that failed at 107
    # belongs to the outage, so the window starts at 105, not at the first failed probe (110).
    events = feed(OutageDetector(3, 2), "++---")
    assert events == [OutageEvent("started", 105.0, None, HEALTHY)]


def test_without_any_healthy_probe_the_outage_is_dated_from_the_first_failed_one():
    events = feed(OutageDetector(3, 2), "---++")
    assert events == [OutageEvent("started", 100.0, None, FIRST), OutageEvent("ended", 100.0, 120.0, FIRST)]


def test_a_healthy_probe_inside_the_failures_moves_the_start_to_it():
    # "+--+---": the run that opens the outage follows the healthy probe at 115.
    assert feed(OutageDetector(3, 2), "+--+---") == [OutageEvent("started", 115.0, None, HEALTHY)]


def test_flapping_inside_the_thresholds_opens_nothing():
    assert feed(OutageDetector(3, 2), "+--+--+-+--+") == []


def test_flapping_during_an_outage_does_not_close_it():
    events = feed(OutageDetector(2, 3), "--+-++-+++")
    assert events == [OutageEvent("started", 100.0, None, FIRST), OutageEvent("ended", 100.0, 145.0, FIRST)]


def test_an_outage_already_open_at_start_up_is_closed_with_its_own_start():
    detector = OutageDetector(3, 2, open_since=42.0)
    assert detector.in_outage
    assert feed(detector, "++") == [OutageEvent("ended", 42.0, 105.0)]


def test_thresholds_of_one_react_to_a_single_probe():
    assert feed(OutageDetector(1, 1), "-+") == [
        OutageEvent("started", 100.0, None, FIRST),
        OutageEvent("ended", 100.0, 105.0, FIRST),
    ]


@pytest.mark.parametrize(("fail", "recover"), [(0, 2), (3, 0), (-1, 1)])
def test_thresholds_below_one_are_refused(fail, recover):
    with pytest.raises(ValueError, match="at least 1"):
        OutageDetector(fail, recover)
