"""``RecoveryPlugin``: the subscriber that turns ``outage_ended`` into a recovery run.

Connect it once; every outage end then selects the window's DLQ entries, recovers them
through the three gates, and announces ``recovery_completed`` (or ``recovery_failed``).
Nothing it does can raise into whoever sent ``outage_ended``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .signals import outage_ended, recovery_completed, recovery_failed, send_isolated
from .sync_queue import dlq_recovery
from .sync_queue.dlq import DeadLetterQueue
from .sync_queue.dlq_window import DlqWindow, validate_window, whole_seconds
from .sync_queue.pending_windows import PendingWindows
from .sync_queue.recovery_lock import recovery_lock

__all__ = ["RecoveryPlugin"]

logger = logging.getLogger(__name__)


class RecoveryPlugin:
    """Recovers a Plex outage's dead letters when the outage ends.

    Args:
        dlq: PlexSync's dead-letter queue.
        queue: PlexSync's ``SQLiteAckQueue`` (open it with ``multithreading=True`` when
            ``outage_ended`` is sent from another thread than the one that opened it).
        stash: A ``stashapi`` client, a ``StashConnection``, or anything with ``find_scene``.
        plex_client: A ``PlexServer``, a ``PlexConnection``, or anything with ``query``.
        data_dir: The PlexSync data directory.
        include_optional: Also recover ``PlexTemporaryError`` and ``PlexNotFound`` entries.
        batched: Ask Stash and write the queue once per chunk where the objects allow it;
            False does both once per entry (same results; ``bench`` compares the two).
    """

    def __init__(
        self,
        dlq: DeadLetterQueue,
        queue: Any,
        stash: Any,
        plex_client: Any,
        data_dir: str | Path,
        *,
        include_optional: bool = False,
        batched: bool = True,
    ) -> None:
        self.dlq = dlq
        self.queue = queue
        self.stash = stash
        self.plex_client = plex_client
        self.data_dir = Path(data_dir)
        self.include_optional = include_optional
        self.batched = batched
        self._connected = False

    def __repr__(self) -> str:
        return f"RecoveryPlugin(data_dir={str(self.data_dir)!r}, include_optional={self.include_optional})"

    def connect(self) -> "RecoveryPlugin":
        """Subscribe to ``outage_ended`` from any sender, holding the receiver strongly; return self."""
        outage_ended.connect(self._on_outage_ended, weak=False)
        self._connected = True
        return self

    def disconnect(self) -> None:
        """Stop receiving ``outage_ended``."""
        outage_ended.disconnect(self._on_outage_ended)
        self._connected = False

    @property
    def connected(self) -> bool:
        """Whether the plugin is subscribed."""
        return self._connected

    def __enter__(self) -> "RecoveryPlugin":
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def _on_outage_ended(self, sender: Any, **kwargs: Any) -> None:
        self.recover_window(kwargs.get("start"), kwargs.get("end"))

    def recover_window(self, start: Any, end: Any) -> dlq_recovery.RecoveryResult | None:
        """Recover one outage window (and any still pending) and announce each outcome; never raises.

        The window is widened to whole seconds (the DLQ's timestamps are whole seconds),
        saved as pending first, merged with any pending window it overlaps, so a run that
        is deferred or interrupted is retried later.

        Returns:
            The result of the run that covered this window (also sent with
            ``recovery_completed``), or None when it failed (``recovery_failed`` was sent).
        """
        try:
            start_f, end_f = validate_window(start, end)
        except Exception as error:
            self._announce_failure(error, start, end)
            return None
        window = whole_seconds(start_f, end_f)
        covering: dlq_recovery.RecoveryResult | None = None
        for run_start, run_end, outcome in self._run_pending(window):
            if isinstance(outcome, dlq_recovery.RecoveryResult) and run_start <= window[0] and window[1] <= run_end:
                covering = outcome
        return covering

    def retry_pending(self) -> list[dlq_recovery.RecoveryResult]:
        """Retry every pending window (the watch daemon calls this once Plex is healthy); never raises."""
        return [outcome for _, _, outcome in self._run_pending(None) if isinstance(outcome, dlq_recovery.RecoveryResult)]

    def pending_windows(self) -> list[tuple[float, float]]:
        """Return the windows waiting for a retry."""
        return PendingWindows(self.data_dir).windows()

    def _run_pending(self, new_window: tuple[float, float] | None) -> list[tuple[float, float, Any]]:
        runs: list[tuple[float, float, Any]] = []
        try:
            with recovery_lock(self.data_dir):
                pending = PendingWindows(self.data_dir)
                if new_window is not None:
                    pending.add(*new_window)
                for run_start, run_end in pending.windows():
                    runs.append((run_start, run_end, self._run_one(pending, run_start, run_end)))
        except Exception as error:  # the state file or the lock itself failed
            window = new_window or (None, None)
            runs.append((window[0], window[1], error))
        for run_start, run_end, outcome in runs:
            if isinstance(outcome, dlq_recovery.RecoveryResult):
                send_isolated(recovery_completed, self, result=outcome, start=run_start, end=run_end)
            else:
                self._announce_failure(outcome, run_start, run_end)
        return runs

    def _run_one(self, pending: PendingWindows, start: float, end: float) -> Any:
        try:
            entries = DlqWindow(self.dlq, start, end, dlq_recovery.get_error_types_for_recovery(self.include_optional))
            result = dlq_recovery.recover_outage_jobs_locked(
                entries, self.queue, self.stash, self.plex_client, batched=self.batched
            )
        except Exception as error:
            return error
        if result.deferred:
            logger.warning("outage window %s..%s stays pending: part of it must be retried", start, end)
            return result
        try:
            pending.remove(start, end)
        except Exception as error:  # the jobs are queued: report the run; a retry finds them redriven
            logger.error("outage window %s..%s was recovered but stays listed as pending: %s", start, end, error)
        return result

    def _announce_failure(self, error: BaseException, start: Any, end: Any) -> None:
        logger.error("recovery of outage window %r..%r failed: %s", start, end, error)
        logger.debug("recovery failure detail", exc_info=error)
        send_isolated(recovery_failed, self, error=error, start=start, end=end)
