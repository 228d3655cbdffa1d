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
from .sync_queue.dlq_window import DlqWindow, validate_window

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
    ) -> None:
        self.dlq = dlq
        self.queue = queue
        self.stash = stash
        self.plex_client = plex_client
        self.data_dir = Path(data_dir)
        self.include_optional = include_optional
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
        """Recover one outage window and announce the outcome; never raises.

        Returns:
            The result (also sent with ``recovery_completed``), or None when the run
            failed (``recovery_failed`` was sent).
        """
        try:
            start_f, end_f = validate_window(start, end)
            entries = DlqWindow(self.dlq, start_f, end_f, dlq_recovery.get_error_types_for_recovery(self.include_optional))
            result = dlq_recovery.recover_outage_jobs(entries, self.queue, self.stash, self.plex_client, self.data_dir)
        except Exception as error:
            logger.error("recovery of outage window %r..%r failed: %s", start, end, error)
            logger.debug("recovery failure detail", exc_info=True)
            send_isolated(recovery_failed, self, error=error, start=start, end=end)
            return None
        send_isolated(recovery_completed, self, result=result, start=start_f, end=end_f)
        return result
