"""The watch daemon: probes Plex, records outages, and lets the plugin recover them.

Each tick probes Plex's ``/identity``, feeds the result to an ``OutageDetector`` and, on a
transition, to ``OutageHistory`` (which sends ``outage_started`` / ``outage_ended``; the
connected ``RecoveryPlugin`` recovers). It also follows outages another process records in
the same history file, and retries pending windows once Plex answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..plex.health import check_plex_health
from ..plugin import RecoveryPlugin
from ..signals import outage_ended, recovery_completed, recovery_failed, send_isolated
from ..sync_queue.dlq_recovery import get_error_types_for_recovery
from ..sync_queue.dlq_window import DlqWindow, whole_seconds
from .history_follower import HistoryFollower
from .outage_detector import OutageDetector
from .outage_history import OutageHistory

__all__ = ["WatchDaemon", "WatchSettings", "describe_result"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    """How often and how strictly the daemon probes.

    Attributes:
        interval: Seconds between probes.
        fail_threshold: Consecutive failed probes that open an outage.
        recover_threshold: Consecutive healthy probes that close it.
        probe_timeout: Seconds a probe waits for Plex.
        retry_interval: Least seconds between retries of pending windows while Plex is up.
    """

    interval: float = 5.0
    fail_threshold: int = 3
    recover_threshold: int = 2
    probe_timeout: float = 3.0
    retry_interval: float = 60.0

    def __post_init__(self) -> None:
        for name in ("interval", "probe_timeout", "retry_interval"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("fail_threshold", "recover_threshold"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")


def describe_result(result: Any, start: Any, end: Any) -> str:
    """One log line with a recovery's counts."""
    text = (
        f"recovered {result.recovered}/{result.total_dlq_entries} DLQ entries for outage {start}..{end}"
        f" (already queued {result.skipped_already_queued}, plex down {result.skipped_plex_down},"
        f" scene missing {result.skipped_scene_missing}, stash error {result.skipped_stash_error},"
        f" failed {result.failed})"
    )
    return text + (" - window kept pending for a retry" if result.deferred else "")


class WatchDaemon:
    """Probe loop; call ``run(stop)`` on the thread that should do the work."""

    def __init__(
        self,
        plex_client: Any,
        plugin: RecoveryPlugin,
        settings: WatchSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plex_client = plex_client
        self.plugin = plugin
        self.settings = settings or WatchSettings()
        self.clock = clock
        self.history = OutageHistory(plugin.data_dir)
        self.follower = HistoryFollower(plugin.data_dir)
        current = self.history.get_current_outage()
        self.detector = OutageDetector(
            self.settings.fail_threshold,
            self.settings.recover_threshold,
            open_since=float(current["started_at"]) if current else None,
        )
        self._last_retry = float("-inf")
        self._was_healthy: bool | None = None

    def _log_completed(self, sender: Any, *, result: Any, start: Any, end: Any, **kwargs: Any) -> None:
        logger.info(describe_result(result, start, end))

    def _log_failed(self, sender: Any, *, error: Any, start: Any, end: Any, **kwargs: Any) -> None:
        logger.error("recovery for outage %s..%s failed: %s", start, end, error)

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set; never raises on a failed tick."""
        connected_here = not self.plugin.connected
        if connected_here:
            self.plugin.connect()
        recovery_completed.connect(self._log_completed, sender=self.plugin, weak=False)
        recovery_failed.connect(self._log_failed, sender=self.plugin, weak=False)
        logger.info(
            "watching Plex every %.1f s (outage after %d failed probes, over after %d healthy ones)",
            self.settings.interval,
            self.settings.fail_threshold,
            self.settings.recover_threshold,
        )
        try:
            self.follower.start()
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    logger.exception("watch tick failed; trying again in %.1f s", self.settings.interval)
                stop.wait(self.settings.interval)
        finally:
            recovery_completed.disconnect(self._log_completed, sender=self.plugin)
            recovery_failed.disconnect(self._log_failed, sender=self.plugin)
            if connected_here:
                self.plugin.disconnect()
            logger.info("watch stopped")

    def tick(self) -> None:
        """Probe once and act on the outcome."""
        at = self.clock()
        healthy, latency_ms = check_plex_health(self.plex_client, timeout=self.settings.probe_timeout)
        if healthy != self._was_healthy:
            logger.info("Plex is %s", f"up ({latency_ms:.0f} ms)" if healthy else "not answering")
        event = self.detector.observe(at, healthy)
        if event is not None and event.kind == "started":
            self.history.record_outage_start(event.start)
        elif event is not None and event.end is not None:
            self._end_outage(event.start, event.end)
            self._last_retry = self.clock()  # that outage_ended already retried what was pending
        self.follower.poll()
        if healthy and not self.detector.in_outage:
            # An outage that ended in this tick has just retried the pending windows.
            self._retry_pending(recovered=self._was_healthy is False and event is None)
        self._was_healthy = healthy

    def _end_outage(self, start: float, end: float) -> None:
        try:
            record = self.history.record_outage_end(end, jobs_affected=self._jobs_affected(start, end))
        except Exception as error:
            logger.error("could not record the end of the outage in %s: %s", self.history.path, error)
            record = None
        if record is None:
            # The history lost the open record (rewritten by another process, unwritable, reset
            # after corruption): the outage still happened, so its window is recovered anyway.
            send_isolated(outage_ended, self.history, start=start, end=end)
            record = {"started_at": start, "ended_at": end}
        self.follower.mark_handled(record["started_at"], record["ended_at"])

    def _jobs_affected(self, start: float, end: float) -> int:
        types = get_error_types_for_recovery(self.plugin.include_optional)
        try:
            return len(DlqWindow(self.plugin.dlq, *whole_seconds(start, end), types))
        except Exception as error:
            logger.warning("could not count the outage's DLQ entries: %s", error)
            return 0

    def _retry_pending(self, *, recovered: bool) -> None:
        now = self.clock()
        if not recovered and now - self._last_retry < self.settings.retry_interval:
            return
        self._last_retry = now
        if self.plugin.pending_windows():
            logger.info("Plex answers: retrying pending outage windows")
            self.plugin.retry_pending()
