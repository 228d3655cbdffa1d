"""Deciding from health probes when an outage starts and ends, with thresholds against flapping.

A pure state machine (no I/O, no clock), so the rules are easy to test: an outage starts
after ``fail_threshold`` consecutive failed probes, dated at the *first* of them, so DLQ
entries written while the threshold was being reached fall inside the window; it ends after
``recover_threshold`` consecutive healthy probes, dated at the last of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutageDetector", "OutageEvent"]


@dataclass(frozen=True)
class OutageEvent:
    """A transition: ``kind`` is ``"started"`` or ``"ended"``; ``start``/``end`` are Unix seconds."""

    kind: str
    start: float
    end: float | None = None


class OutageDetector:
    """Turns a stream of ``(time, healthy)`` probes into outage start and end events."""

    def __init__(self, fail_threshold: int = 3, recover_threshold: int = 2, *, open_since: float | None = None) -> None:
        """
        Args:
            fail_threshold: Consecutive failed probes that open an outage.
            recover_threshold: Consecutive healthy probes that close it.
            open_since: Start of an outage already open (read from the history at start-up).

        Raises:
            ValueError: A threshold is below 1.
        """
        for name, value in (("fail_threshold", fail_threshold), ("recover_threshold", recover_threshold)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.outage_start: float | None = open_since
        self._first_failure: float | None = None
        self._failures = 0
        self._successes = 0

    @property
    def in_outage(self) -> bool:
        """Whether an outage is open."""
        return self.outage_start is not None

    def observe(self, at: float, healthy: bool) -> OutageEvent | None:
        """Feed one probe taken at ``at``; return the transition it causes, if any."""
        if healthy:
            self._failures, self._first_failure = 0, None
            if self.outage_start is None:
                return None
            self._successes += 1
            if self._successes < self.recover_threshold:
                return None
            event = OutageEvent("ended", self.outage_start, at)
            self.outage_start, self._successes = None, 0
            return event
        self._successes = 0
        if self.outage_start is not None:
            return None
        if self._failures == 0:
            self._first_failure = at
        self._failures += 1
        if self._failures < self.fail_threshold:
            return None
        assert self._first_failure is not None
        self.outage_start, self._failures = self._first_failure, 0
        return OutageEvent("started", self.outage_start)
