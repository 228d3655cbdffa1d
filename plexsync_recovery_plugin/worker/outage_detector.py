"""Deciding from health probes when an outage starts and ends, with thresholds against flapping.

A pure state machine (no I/O, no clock), so the rules are easy to test: an outage starts
after ``fail_threshold`` consecutive failed probes. It is dated from the *last healthy probe*
before them, the earliest moment Plex may have failed, so a DLQ entry written between that
probe and the first failed one falls inside the window; with no healthy probe seen yet it is
dated from the first failed probe. It ends after ``recover_threshold`` consecutive healthy
probes, dated at the last of them.

The clock may step while an outage lasts (NTP, a VM resumed): a probe then reads earlier than
the outage's start. Every reading of an outage is kept as its ``readings`` span, so the end
event covers the earliest to the latest of them, whichever order they came in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DATED_FROM_FIRST_FAILURE", "DATED_FROM_LAST_HEALTHY", "OutageDetector", "OutageEvent"]

#: The start is the last healthy probe before the failures.
DATED_FROM_LAST_HEALTHY = "last_healthy_probe"
#: No healthy probe had been seen: the start is the first failed probe.
DATED_FROM_FIRST_FAILURE = "first_failed_probe"


@dataclass(frozen=True)
class OutageEvent:
    """A transition: ``kind`` is ``"started"`` or ``"ended"``; ``start``/``end`` are Unix seconds.

    ``dated_from`` says which probe ``start`` is (``DATED_FROM_*``); None for an outage that
    was already open when the detector was made. ``readings`` (ended events) is the earliest
    and the latest probe time of the outage, its start included.
    """

    kind: str
    start: float
    end: float | None = None
    dated_from: str | None = None
    readings: tuple[float, float] | None = field(default=None, compare=False)

    @property
    def window(self) -> tuple[float, float]:
        """The window to recover: every reading of the outage (``start`` alone for a start event)."""
        if self.readings is not None:
            return self.readings
        return (self.start, self.end if self.end is not None else self.start)

    @property
    def clock_stepped(self) -> bool:
        """Whether a reading went back before an earlier one (the window is then wider than start..end)."""
        return self.window != (self.start, self.end if self.end is not None else self.start)


class OutageDetector:
    """Turns a stream of ``(time, healthy)`` probes into outage start and end events."""

    def __init__(self, fail_threshold: int = 3, recover_threshold: int = 2, *, open_since: float | None = None) -> None:
        """
        Args:
            fail_threshold: Consecutive failed probes that open an outage.
            recover_threshold: Consecutive healthy probes that close it.
            open_since: Start of an outage already open (read from the state at start-up).

        Raises:
            ValueError: A threshold is below 1.
        """
        for name, value in (("fail_threshold", fail_threshold), ("recover_threshold", recover_threshold)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.outage_start: float | None = open_since
        self.dated_from: str | None = None
        self._last_healthy: float | None = None
        self._first_failure: float | None = None
        self._failures = 0
        self._successes = 0
        self._readings: tuple[float, float] | None = None if open_since is None else (open_since, open_since)

    @property
    def in_outage(self) -> bool:
        """Whether an outage is open."""
        return self.outage_start is not None

    def _read(self, at: float) -> None:
        """Widen the open outage's (or the failure run's) readings to ``at``."""
        low, high = self._readings if self._readings is not None else (at, at)
        self._readings = (min(low, at), max(high, at))

    def observe(self, at: float, healthy: bool) -> OutageEvent | None:
        """Feed one probe taken at ``at``; return the transition it causes, if any."""
        if healthy:
            self._failures, self._first_failure = 0, None
            self._last_healthy = at
            if self.outage_start is None:
                self._readings = None
                return None
            self._read(at)
            self._successes += 1
            if self._successes < self.recover_threshold:
                return None
            event = OutageEvent("ended", self.outage_start, at, self.dated_from, self._readings)
            self.outage_start, self.dated_from, self._successes, self._readings = None, None, 0, None
            return event
        self._successes = 0
        self._read(at)
        if self.outage_start is not None:
            return None
        if self._failures == 0:
            self._first_failure = at
            self._readings = (at, at)
        self._failures += 1
        if self._failures < self.fail_threshold:
            return None
        assert self._first_failure is not None
        if self._last_healthy is not None:
            self.outage_start, self.dated_from = self._last_healthy, DATED_FROM_LAST_HEALTHY
        else:
            self.outage_start, self.dated_from = self._first_failure, DATED_FROM_FIRST_FAILURE
        self._read(self.outage_start)
        self._failures = 0
        return OutageEvent("started", self.outage_start, None, self.dated_from)
