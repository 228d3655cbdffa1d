"""Following the outages of a data directory: ``outage_ended`` once for each outage not handled yet.

What exists and what is handled is asked of ``outages.OutageSource`` (PlexSync's
``outage_history.json``, read as the outages it means, and the watch daemon's detections);
this class only sends. When an outage is closed, ``outage_ended`` is sent for it and its
window noted as handled for that outage, so a restart never sends it again, and an outage
that later grows (PlexSync closing an older open record after a newer one) sends only the
seconds no earlier window covered (``uncovered_windows``).

It runs in the watch daemon, or inside the process of PlexSync's worker, beside a connected
``RecoveryPlugin``: PlexSync's ``SyncWorker`` builds its own outage history and takes none
from outside, so the follower reads the file that worker writes (``start_following``
polls it on a background thread; ``poll`` does one check for a host with its own loop).

The first time anything follows a data directory (``start``) it catches up: outages that
ended in the last ``catch_up_days`` days (7 by default) are sent by the next ``poll`` like any
new one, older ones are only noted as handled (recovering every historical outage at once is
not what anybody installing it expects). The history file is only read, never moved or rewritten.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..formatting import iso_time
from ..outages import (
    CATCH_UP_DAYS,
    SOURCE_WATCH,
    DetectedOutages,
    OutageSource,
    UnhandledWindow,
    check_catch_up_days,
)
from ..signals import outage_ended, send_isolated
from .outage_history import HISTORY_FILE_NAME

__all__ = ["DEFAULT_FOLLOW_INTERVAL", "HistoryFollower"]

logger = logging.getLogger(__name__)

#: Seconds between two looks at the history file when following on a thread.
DEFAULT_FOLLOW_INTERVAL = 5.0

_NEVER = ("never polled",)


class HistoryFollower:
    """Sends ``outage_ended`` for each closed outage of a data directory that is not handled yet.

    Args:
        data_dir: PlexSync's data directory (its ``outage_history.json`` is read, never written).
        catch_up_days: On the first start in ``data_dir``, outages that ended this many days back
            or less are still sent; ``0``: none.

    Raises:
        ValueError: ``catch_up_days`` is negative or not a number.
    """

    def __init__(self, data_dir: str | Path, catch_up_days: float = CATCH_UP_DAYS) -> None:
        self.data_dir = Path(data_dir)
        self.catch_up_days = check_catch_up_days(catch_up_days)
        self.path = self.data_dir / HISTORY_FILE_NAME
        self.outages = OutageSource(self.data_dir)
        self.detected = DetectedOutages(self.data_dir)  # the sender of the daemon's own outages
        self._last_seen: object = _NEVER
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"HistoryFollower({str(self.data_dir)!r})"

    def mark_handled(self, started_at: float, ended_at: float) -> None:
        """Note that ``[started_at, ended_at]`` was handled (by us or anyone) for every outage it overlaps."""
        self.outages.mark_handled(started_at, ended_at)

    def start(self) -> None:
        """Take the baseline the first time this data directory is followed; later calls do nothing.

        Outages that ended within ``catch_up_days`` are left for the next ``poll`` to send; older
        ones are noted as handled without being sent.
        """
        self.outages.take_baseline(self.catch_up_days)

    def _signature(self) -> object:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def poll(self, *, everything: bool = False) -> list[tuple[float, float]]:
        """Send ``outage_ended`` for each unhandled outage (or its new part); return the windows sent.

        Cheap while the history file is unchanged since the last call: nothing else is read
        unless ``everything`` (the daemon closed an outage of its own).
        """
        signature = self._signature()
        if signature == self._last_seen and not everything:
            return []
        sent: list[tuple[float, float]] = []
        while True:
            # Asked again after each send: what one window handled may cover another source's outage.
            fresh = [w for w in self.outages.unhandled() if (w.start, w.end) not in sent]
            if not fresh:
                break
            self._send(fresh[0])
            sent.append((fresh[0].start, fresh[0].end))
        self._last_seen = signature
        return sent

    def _send(self, window: UnhandledWindow) -> None:
        outage = window.outage
        if outage.source != SOURCE_WATCH:  # the daemon logged its own outage when it closed it
            window.warn_if_clock_stepped()
            logger.info(
                "outage %s..%s was closed by PlexSync (%d history records)",
                iso_time(window.start),
                iso_time(window.end),
                outage.records,
            )
        sender: object = self.detected if outage.source == SOURCE_WATCH else self
        send_isolated(outage_ended, sender, start=window.start, end=window.end)
        # Marked after sending: a crash in between re-sends, and recovery is idempotent.
        self.outages.mark_handled(window.start, window.end, outage)

    def start_following(self, interval: float = DEFAULT_FOLLOW_INTERVAL) -> "HistoryFollower":
        """Follow the history on a daemon thread, every ``interval`` seconds, until ``stop``; return self.

        The baseline (``start``) is taken before it returns (a failure is logged, and the thread
        tries again before its first look); the thread then polls at once and every ``interval``.
        A failed look is logged and tried again at the next one. ``outage_ended`` (so the
        recovery) runs on that thread.

        Raises:
            ValueError: ``interval`` is not a positive number of seconds.
            RuntimeError: It is following already.
        """
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self!r} is following already")
        self._stop.clear()
        try:
            self.start()
            based = True
        except Exception:
            logger.exception("could not take note of %s yet; trying again in %.1f s", self.path, interval)
            based = False
        self._thread = threading.Thread(
            target=self._follow, args=(float(interval), based), name="plexsync-recovery-follower", daemon=True
        )
        self._thread.start()
        return self

    def _follow(self, interval: float, based: bool) -> None:
        while True:
            try:
                if not based:
                    self.start()
                    based = True
                self.poll()
            except Exception:
                logger.exception("checking %s failed; trying again in %.1f s", self.path, interval)
            if self._stop.wait(interval):
                return

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop following and wait (up to ``timeout`` seconds) for a recovery under way to finish."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def following(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None and self._thread.is_alive()
