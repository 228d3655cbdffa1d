"""The watch daemon: it probes Plex, detects outages, records them, and lets the plugin recover them.

``OutageDetector`` is a pure state machine over probe outcomes (no I/O, no clock).
``WatchDaemon`` runs it on a timer: each outage it opens or closes is recorded in the
plugin's own state and announced with ``outage_started`` / ``outage_ended``, so the
connected ``RecoveryPlugin`` recovers it; pending windows are retried once Plex answers
again. A token Plex rejects is not an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..engine import plural
from ..errors import ConfigurationError
from ..formatting import describe_result, describe_window, iso_time
from ..outages import CATCH_UP_DAYS, DetectedOutages, check_catch_up_days
from ..plex.health import PLEX_DOWN, PLEX_TOKEN_REJECTED, PLEX_UP, PlexProbe, probe_plex
from ..plugin import RecoveryPlugin
from ..signals import (
    outage_started,
    recovery_completed,
    recovery_failed,
    send_isolated,
)
from ..sync_queue.dlq import whole_seconds
from .history_follower import HistoryFollower

__all__ = ['DATED_FROM_FIRST_FAILURE', 'DATED_FROM_LAST_HEALTHY', 'OutageDetector', 'OutageEvent', 'Heartbeat', 'PluginOpener', 'WatchDaemon', 'WatchSettings', 'describe_result']


# ==== outage detector ===========================================================================
# Deciding from health probes when an outage starts and ends, with thresholds against flapping.
#
# A pure state machine (no I/O, no clock), so the rules are easy to test: an outage starts
# after ``fail_threshold`` consecutive failed probes. It is dated from the *last healthy probe*
# before them, the earliest moment Plex may have failed, so a DLQ entry written between that
# probe and the first failed one falls inside the window; with no healthy probe seen yet it is
# dated from the first failed probe. It ends after ``recover_threshold`` consecutive healthy
# probes, dated at the last of them.
#
# The clock may step while an outage lasts (NTP, a VM resumed): a probe then reads earlier than
# the outage's start. Every reading of an outage is kept as its ``readings`` span, so the end
# event covers the earliest to the latest of them, whichever order they came in.

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


# ==== watch =====================================================================================
# The watch daemon: probes Plex, records the outages it detects, and lets the plugin recover them.
#
# Each tick probes Plex (``probe_plex``) and feeds the outcome to an ``OutageDetector``. An
# outage it opens or closes is recorded in the plugin's own state (``DetectedOutages``, never
# PlexSync's ``outage_history.json``) and announced with ``outage_started`` /
# ``outage_ended``, so the connected ``RecoveryPlugin`` recovers it. Which outages are
# handled is asked of one owner (``outages.OutageSource``), through the ``HistoryFollower``
# that also follows the outages PlexSync's worker records; the daemon retries pending windows
# once Plex answers again. An outage whose probes went back in time (the clock stepped back)
# is recovered over the earliest to the latest of them, with one warning.
#
# A token Plex rejects is not an outage: no outage opens or closes, nothing is retried, one
# error says so, and probing goes on. A data directory without ``dlq.db`` yet is watched all
# the same; recovery starts once PlexSync has created the file. Logs carry state changes; every
# probe is logged at DEBUG.

logger = logging.getLogger(__name__)

#: Builds the plugin once PlexSync's files are there; raises (e.g. ``DlqUnavailable``) until then.
PluginOpener = Callable[[], RecoveryPlugin]


@dataclass(frozen=True)
class WatchSettings:
    """How often and how strictly the daemon probes.

    Attributes:
        interval: Seconds between probes.
        fail_threshold: Consecutive failed probes that open an outage.
        recover_threshold: Consecutive healthy probes that close it.
        probe_timeout: Seconds a probe waits for Plex.
        retry_interval: Least seconds between retries of pending windows while Plex is up.
        token_hint: How to fix a token Plex rejects (the CLI names its flag and variable).
        catch_up_days: On the first start in a data directory, outages that ended this many days
            back or less are recovered (older ones are noted as handled); ``0``: none.
    """

    interval: float = 5.0
    fail_threshold: int = 3
    recover_threshold: int = 2
    probe_timeout: float = 3.0
    retry_interval: float = 60.0
    token_hint: str = "configure a valid Plex token"
    catch_up_days: float = CATCH_UP_DAYS

    def __post_init__(self) -> None:
        check_catch_up_days(self.catch_up_days)
        for name in ("interval", "probe_timeout", "retry_interval"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("fail_threshold", "recover_threshold"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")


@dataclass(frozen=True)
class Heartbeat:
    """When the daemon's loop last began a tick: what a health check asks (does the loop still tick?).

    Attributes:
        monotonic: ``time.monotonic()`` then: ages are measured with it, so a clock step changes nothing.
        at: Unix time then (the daemon's clock), for people and metrics.
    """

    monotonic: float
    at: float

    def age(self) -> float:
        """Seconds since that tick began."""
        return max(0.0, time.monotonic() - self.monotonic)


class WatchDaemon:
    """Probe loop; call ``run(stop)`` on the thread that should do the work.

    Args:
        plex_client: What to probe (``PlexConnection``, ``PlexServer``, PlexSync's client wrapper).
        plugin: The ``RecoveryPlugin``, or a ``PluginOpener`` tried every tick until it succeeds
            (the daemon then owns the plugin it got).
        settings: Probe timing and thresholds.
        clock: Unix time source (tests drive it).
        data_dir: The data directory; required with an opener, else the plugin's.

    Other threads (the status page) may read ``plex_state`` (the last probe's state, None before
    the first), ``heartbeat`` (when the loop last began a tick) and ``plugin`` (None until it opens).
    """

    def __init__(
        self,
        plex_client: Any,
        plugin: RecoveryPlugin | PluginOpener,
        settings: WatchSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        data_dir: str | Path | None = None,
    ) -> None:
        self.plex_client = plex_client
        self.plugin: RecoveryPlugin | None = plugin if isinstance(plugin, RecoveryPlugin) else None
        self._open_plugin = None if isinstance(plugin, RecoveryPlugin) else plugin
        if data_dir is None and self.plugin is None:
            raise ValueError("data_dir is required when the plugin is opened later")
        self.data_dir = Path(data_dir) if data_dir is not None else self.plugin.data_dir  # type: ignore[union-attr]
        self.settings = settings or WatchSettings()
        self.clock = clock
        self.follower = HistoryFollower(self.data_dir, self.settings.catch_up_days)
        self.detected: DetectedOutages = self.follower.detected  # one sender for its outage_started and _ended
        current = self.detected.current()
        self.detector = OutageDetector(
            self.settings.fail_threshold,
            self.settings.recover_threshold,
            open_since=current.started_at if current else None,
        )
        self.plex_state: str | None = None
        self._last_retry = float("-inf")
        self._waiting_for: str | None = None
        self._attached = False
        self._connected_here = False
        self._detected_closed = True  # at start-up: an outage closed before a crash may be unsent
        self.heartbeat: Heartbeat | None = None  # when the loop last began a tick (``run`` sets it)

    def _log_completed(self, sender: Any, *, result: Any, start: Any, end: Any, **kwargs: Any) -> None:
        logger.info(describe_result(result, start, end, kwargs.get("received")))

    def _log_failed(self, sender: Any, *, error: Any, start: Any, end: Any, **kwargs: Any) -> None:
        if isinstance(error, ConfigurationError):
            return  # the plugin logged it, once until it changes; probing and retrying go on
        logger.error("recovery for outage %s failed: %s", describe_window(start, end, kwargs.get("received")), error)

    def _attach(self) -> None:
        """Subscribe the plugin (if nobody did) and the result loggers; idempotent."""
        if self.plugin is None or self._attached:
            return
        if not self.plugin.connected:
            self.plugin.connect()
            self._connected_here = True
        recovery_completed.connect(self._log_completed, sender=self.plugin, weak=False)
        recovery_failed.connect(self._log_failed, sender=self.plugin, weak=False)
        self._attached = True

    def detach(self) -> None:
        """Unsubscribe what this daemon subscribed (``run`` does so when it stops)."""
        if self.plugin is None or not self._attached:
            return
        recovery_completed.disconnect(self._log_completed, sender=self.plugin)
        recovery_failed.disconnect(self._log_failed, sender=self.plugin)
        if self._connected_here:
            self.plugin.disconnect()
        self._attached = self._connected_here = False

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set; never raises on a failed tick."""
        self._attach()
        logger.info(
            "watching Plex every %.1f s (outage after %d failed probes, over after %d healthy ones)",
            self.settings.interval,
            self.settings.fail_threshold,
            self.settings.recover_threshold,
        )
        try:
            self.follower.start()
            while not stop.is_set():
                self.heartbeat = Heartbeat(time.monotonic(), self.clock())
                try:
                    self.tick()
                except Exception:
                    logger.exception("watch tick failed; trying again in %.1f s", self.settings.interval)
                stop.wait(self.settings.interval)
        finally:
            self.detach()
            logger.info("watch stopped")

    def tick(self) -> None:
        """Probe once and act on the outcome."""
        at = self.clock()
        probe = probe_plex(self.plex_client, timeout=self.settings.probe_timeout)
        logger.debug("probe at %s: %s", iso_time(at), _describe_probe(probe))
        previous, self.plex_state = self.plex_state, probe.state
        if probe.state != previous:
            self._log_plex_state(probe)
        self._ensure_plugin()
        if probe.state == PLEX_TOKEN_REJECTED:
            return  # not an outage, and nothing can be recovered until the token is accepted
        event = self.detector.observe(at, probe.healthy)
        if event is not None:
            self._on_event(event)
        if self.plugin is None:
            return
        self._send_unhandled()
        if probe.healthy and not self.detector.in_outage:
            # An outage that ended in this tick has just retried the pending windows.
            self._retry_pending(recovered=previous not in (None, PLEX_UP) and event is None)

    def _log_plex_state(self, probe: PlexProbe) -> None:
        if probe.state == PLEX_UP:
            logger.info("Plex is up (%.0f ms)", probe.latency_ms)
        elif probe.state == PLEX_DOWN:
            logger.warning("Plex is not answering (%s)", probe.detail)
        else:
            logger.error(
                "Plex rejected the token (%s): %s. This is not an outage: none is recorded and nothing is"
                " retried until Plex accepts the token; probing goes on",
                probe.detail,
                self.settings.token_hint,
            )

    def _ensure_plugin(self) -> None:
        """Open the plugin if it is still missing; say once per reason why it cannot be yet."""
        if self.plugin is not None or self._open_plugin is None:
            return
        try:
            self.plugin = self._open_plugin()
        except Exception as error:  # DlqUnavailable, a missing file, anything: keep watching
            reason = str(error) or type(error).__name__
            if reason != self._waiting_for:
                logger.warning("cannot recover yet: %s; waiting for it (Plex is still watched)", reason)
                self._waiting_for = reason
            return
        if self._waiting_for is not None:
            logger.info("PlexSync's files are there now: outages are recovered from here on")
        self._waiting_for = None
        self._attach()

    def _on_event(self, event: OutageEvent) -> None:
        if event.kind == "started":
            dated = event.dated_from or DATED_FROM_FIRST_FAILURE
            self.detected.open(event.start, dated)
            logger.warning(
                "Plex outage started at %s (dated from the %s)", iso_time(event.start), dated.replace("_", " ")
            )
            send_isolated(outage_started, self.detected, start=event.start)
            return
        assert event.end is not None
        low, high = event.window
        jobs = self._jobs_affected(low, high)
        self.detected.close(low, high, jobs, event.dated_from or DATED_FROM_FIRST_FAILURE)
        if event.clock_stepped:
            logger.warning(
                "Plex outage ended at %s, but it started at %s by the clock (the clock stepped back while it"
                " lasted): recovering the window between its earliest and latest probe, %s..%s (%s)",
                iso_time(event.end),
                iso_time(event.start),
                iso_time(low),
                iso_time(high),
                plural(jobs, "DLQ entry"),
            )
        else:
            logger.warning(
                "Plex outage ended at %s after %.1f s (%s in its window)",
                iso_time(event.end),
                event.end - event.start,
                plural(jobs, "DLQ entry"),
            )
        self._detected_closed = True
        if self.plugin is not None:
            self._send_unhandled()
            self._last_retry = self.clock()  # that outage_ended already retried what was pending

    def _send_unhandled(self) -> None:
        """Send ``outage_ended`` for every outage (PlexSync's or the daemon's) not handled yet (needs the plugin)."""
        if self.plugin is None:
            return
        self.follower.poll(everything=self._detected_closed)
        self._detected_closed = False

    def _jobs_affected(self, start: float, end: float) -> int:
        if self.plugin is None:
            return 0
        try:
            return len(self.plugin.window_entries(*whole_seconds(start, end)))
        except Exception as error:
            logger.warning("could not count the outage's DLQ entries: %s", error)
            return 0

    def _retry_pending(self, *, recovered: bool) -> None:
        now = self.clock()
        if not recovered and now - self._last_retry < self.settings.retry_interval:
            return
        self._last_retry = now
        if self.plugin is not None and self.plugin.pending_windows():
            logger.info("Plex answers: retrying pending outage windows")
            self.plugin.retry_pending()


def _describe_probe(probe: PlexProbe) -> str:
    if probe.healthy:
        return f"up ({probe.latency_ms:.0f} ms)"
    return f"{probe.state.replace('_', ' ')} ({probe.detail})"
