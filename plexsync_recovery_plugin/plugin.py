"""``RecoveryPlugin``: the subscriber that turns ``outage_ended`` into a recovery run, and the one recovery API.

Connect it once; every outage end then selects the window's DLQ entries, recovers them
through the three gates, and announces ``recovery_completed`` (or ``recovery_failed``).
Nothing it does can raise into whoever sent ``outage_ended``. The CLI, the watch daemon,
the Stash plugin and ``bench`` call the same methods: ``preview`` (what a run would do,
writing nothing), ``recover`` and ``retry_pending`` (the runs they made).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from . import engine
from .engine import Collaborators, EntryOutcome, Observer, RecoveryResult, Selection, default_collaborators
from .errors import ConfigurationError, explain
from .formatting import iso_time
from .outages import OutageSource
from .signals import outage_ended, recovery_completed, recovery_failed, recovery_progress, send_isolated
from .state import DEFAULT_LOCK_WAIT, PendingWindows, RecoveryLockBusy, recovery_lock
from .sync_queue.dlq import DeadLetterQueue, DlqWindow, validate_window, whole_seconds
from .sync_queue.operations import QUEUE_DIR_NAME, open_queue

__all__ = ["EntryOutcome", "Preview", "RecoveryPlugin", "Run"]

logger = logging.getLogger(__name__)

#: A window ``(start, end)`` in Unix seconds.
Window = tuple[float, float]

#: ``factory(queue_path, queue, stash, dry_run=...)``: fresh collaborators for one run.
CollaboratorFactory = Callable[..., Collaborators]


@dataclass(frozen=True)
class Run:
    """One recovery run over a window: its result, or the error that stopped it."""

    start: float | None
    end: float | None
    result: RecoveryResult | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Preview:
    """What recovering a window would do, entry by entry; nothing was written."""

    start: float
    end: float
    result: RecoveryResult
    entries: tuple[EntryOutcome, ...]


class RecoveryPlugin:
    """Recovers a Plex outage's dead letters when the outage ends.

    Args:
        dlq: PlexSync's dead-letter queue.
        queue: PlexSync's ``SQLiteAckQueue`` (open it with ``multithreading=True`` when
            ``outage_ended`` is sent from another thread than the one that opened it), or
            None: ``<data_dir>/queue`` is then opened on the first real run (a preview never
            opens it) and closed by ``close()``.
        stash: A ``stashapi`` client, a ``StashConnection``, or anything with ``find_scene``.
        plex_client: A ``PlexServer``, PlexSync's Plex client wrapper, a ``PlexConnection``,
            or anything with ``query(path, timeout=)``.
        data_dir: The PlexSync data directory.
        include_optional: Also recover ``PlexTemporaryError`` and ``PlexNotFound`` entries.
        outage_casualties: Recover, besides ``PlexServerDown``, the ``PlexTemporaryError``
            entries whose message shows Plex unreachable, timing out or answering 5xx
            (``engine.is_outage_casualty``): what PlexSync's worker dead-letters during
            an outage. On by default; every run is over an outage window.
        collaborators: ``factory(queue_path, queue, stash, dry_run=...)`` giving each run its
            gates and writer; ``default_collaborators`` (batched) when omitted.
        lock_wait: Most seconds a run waits for another recovery to let ``recovery.lock`` go
            (None: no limit); a run that gives up keeps its window pending.
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
        outage_casualties: bool = True,
        collaborators: CollaboratorFactory = default_collaborators,
        lock_wait: float | None = DEFAULT_LOCK_WAIT,
    ) -> None:
        self.dlq = dlq
        self.queue = queue
        self.stash = stash
        self.plex_client = plex_client
        self.data_dir = Path(data_dir)
        self.include_optional = include_optional
        self.outage_casualties = outage_casualties
        self.collaborators = collaborators
        self.lock_wait = lock_wait
        self.queue_path = str(queue.path) if queue is not None else str(self.data_dir / QUEUE_DIR_NAME)
        self._owns_queue = False
        self._connected = False
        self._refusal: str | None = None  # the configuration error last logged: a repeat is not

    def close(self) -> None:
        """Close the queue if the plugin opened it."""
        if self._owns_queue and self.queue is not None:
            self.queue.close()
            self.queue, self._owns_queue = None, False

    def _job_queue(self) -> Any:
        if self.queue is None:
            self.queue, self._owns_queue = open_queue(self.data_dir), True
        return self.queue

    def __repr__(self) -> str:
        return (f"RecoveryPlugin(data_dir={str(self.data_dir)!r}, include_optional={self.include_optional},"
                f" outage_casualties={self.outage_casualties})")

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
        self.recover(kwargs.get("start"), kwargs.get("end"))

    @property
    def selection(self) -> Selection:
        """What a run reads from a window: ``include_optional`` and ``outage_casualties`` as now set."""
        return Selection(self.include_optional, self.outage_casualties)

    @property
    def error_types(self) -> list[str]:
        """The ``error_type`` names this plugin reads from a window (``Selection.error_types``)."""
        return self.selection.error_types

    def window_entries(self, start: float, end: float) -> DlqWindow:
        """The DLQ entries a run over ``start..end`` (already whole seconds) reads, in scene order.

        Scene order keeps each chunk's Stash question to a narrow stretch of ids: in failure
        order a real DLQ's scenes are scattered, and the first chunk alone would need an
        answer about every scene of the window before anything could be written. Within a
        scene the newest entry comes first: its job is the one re-queued.
        """
        # ``error_types``, not the selection's own: a subclass may widen what it reads.
        return self.dlq.window(start, end, self.error_types, order="scene", by_message=self.selection.by_message)

    def note_left(self, entries: DlqWindow) -> dict[str, int]:
        """What the window holds besides the selected entries, by error type, logged once; never raises."""
        return self.selection.note_left(entries)

    def preview(self, start: Any, end: Any, *, again: bool = False, observer: Observer | None = None) -> Preview:
        """What recovering the window would do to each entry; writes nothing, takes no lock.

        ``observer`` also hears each entry as it is decided (for progress on long previews).

        Raises:
            ValueError: The window makes no sense (the message names the bad value).
            sqlite3.Error: The DLQ or the queue file cannot be read.
            ConfigurationError: Plex refused the token, or Stash the API key or session.
        """
        window = whole_seconds(*validate_window(start, end))
        rows: list[EntryOutcome] = []

        def observe(seen: EntryOutcome) -> None:
            rows.append(seen)
            if observer is not None:
                observer(seen)

        entries = self.window_entries(*window)
        collaborators = self.collaborators(self.queue_path, self.queue, self.stash, dry_run=True)
        result = engine.run_recovery(
            entries, self.plex_client, collaborators, since=window[0], again=again, dry_run=True, observer=observe
        )
        result = replace(result, left_by_error_type=self.note_left(entries))
        rows.sort(key=lambda row: (str(row.failed_at), row.dlq_id or 0))
        return Preview(window[0], window[1], result, tuple(rows))

    def recover(self, start: Any, end: Any, *, again: bool = False) -> list[Run]:
        """Recover one outage window (and every pending one), announce each run; never raises.

        The window is widened to whole seconds (the DLQ's timestamps are whole seconds),
        saved as pending first and merged with any pending window it touches, so a run that
        is deferred or interrupted is retried later. ``again`` ignores the ledger for the
        run that covers this window. A refused credential (``ConfigurationError``) is the run's
        error and stops the runs; the windows stay pending for the run once it is fixed.

        Returns:
            Every run made, the one covering this window included; a bad window gives one
            run with its error (``recovery_failed`` was sent).
        """
        try:
            received = validate_window(start, end)
            window = whole_seconds(*received)
        except Exception as error:
            self._announce_failure(error, start, end)
            return [Run(None, None, error=error)]
        runs = self._run_pending(window, again=again, received=received)
        self._note_handled(window, runs)
        return runs

    def _note_handled(self, window: Window, runs: list[Run]) -> None:
        """Tell the one source of outages that ``window``'s seconds are taken (recovered, or pending).

        Every door recovers through here, so an outage recovered through one (``recover
        --last-outage``, a Stash task) is not recovered again through another (the hook, the
        daemon). A window that is neither recovered nor pending is not noted: it must come back.
        """
        try:
            covered = any(run.result is not None and _covers(run, *window) for run in runs)
            if covered or any(low <= window[0] and window[1] <= high for low, high in self.pending_windows()):
                OutageSource(self.data_dir).mark_handled(*window)
        except Exception as error:  # the run stands; at worst a later door runs it again (the ledger makes it a no-op)
            logger.warning("could not note outage window %s..%s as handled: %s", iso_time(window[0]),
                           iso_time(window[1]), error)

    def recover_window(self, start: Any, end: Any) -> RecoveryResult | None:
        """``recover``, returning only the result of the run that covered this window (None if it failed)."""
        covering = [run for run in self.recover(start, end) if run.result is not None and _covers(run, start, end)]
        return covering[-1].result if covering else None

    def retry_pending(self) -> list[Run]:
        """Retry every pending window (the watch daemon calls this once Plex is healthy); never raises."""
        return self._run_pending(None)

    def pending_windows(self) -> list[tuple[float, float]]:
        """Return the windows waiting for a retry."""
        return PendingWindows(self.data_dir).windows()

    def _run_pending(
        self, new_window: tuple[float, float] | None, *, again: bool = False, received: Window | None = None
    ) -> list[Run]:
        """Run every pending window (``new_window`` added first); ``received`` is the window asked for.

        The runs whose window covers ``new_window`` tell their receivers ``received`` (the
        window before it was widened to whole seconds and merged); the others None.
        """
        runs: list[Run] = []

        def asked(start: float | None, end: float | None) -> Window | None:
            if new_window is None or start is None or end is None:
                return None
            return received if start <= new_window[0] and new_window[1] <= end else None

        try:
            with recovery_lock(self.data_dir, self.lock_wait):
                pending = PendingWindows(self.data_dir)
                if new_window is not None:
                    pending.add(*new_window)
                for start, end in pending.windows():
                    forced = again and new_window is not None and start <= new_window[0] and new_window[1] <= end
                    runs.append(self._run_one(pending, start, end, again=forced, received=asked(start, end)))
                    if isinstance(runs[-1].error, ConfigurationError):
                        break  # every other window would fail the same way: they stay pending
        except Exception as error:  # the state file or the lock itself failed, or another recovery holds it
            if isinstance(error, RecoveryLockBusy) and new_window is not None:
                try:  # safe unlocked: adding merges rows; a holder's remove missing one only means a no-op retry
                    PendingWindows(self.data_dir).add(*new_window)
                except Exception as failure:
                    logger.error("the window could not be kept pending: %s", failure)
            window = new_window or (None, None)
            runs.append(Run(window[0], window[1], error=error))
        for run in runs:
            if run.result is not None:
                self._refusal = None
                send_isolated(recovery_completed, self, result=run.result, start=run.start, end=run.end,
                              received=asked(run.start, run.end))
            else:
                assert run.error is not None
                self._announce_failure(run.error, run.start, run.end, asked(run.start, run.end))
        return runs

    def _run_one(
        self, pending: PendingWindows, start: float, end: float, *, again: bool, received: Window | None = None
    ) -> Run:
        try:
            collaborators = self.collaborators(self.queue_path, self._job_queue(), self.stash)
            entries = self.window_entries(start, end)
            result = engine.run_recovery(
                entries, self.plex_client, collaborators, since=start, again=again,
                progress=self._progress_sender(start, end, received),
            )
        except Exception as error:
            return Run(start, end, error=error)
        result = replace(result, left_by_error_type=self.note_left(entries))
        if result.deferred:
            logger.warning("outage window %s..%s stays pending: part of it must be retried", iso_time(start), iso_time(end))
            return Run(start, end, result)
        try:
            pending.remove(start, end)
        except Exception as error:  # the jobs are queued: report the run; a retry finds them redriven
            logger.error(
                "outage window %s..%s was recovered but stays listed as pending: %s", iso_time(start), iso_time(end), error
            )
        return Run(start, end, result)

    def _progress_sender(self, start: float, end: float, received: Window | None = None) -> engine.Progress | None:
        """What tells ``recovery_progress`` receivers after each chunk (None when nobody listens).

        The total is PlexSync's index count of the window (``estimate_window``: cheap, where an
        exact count costs as much as reading the window), raised to what was decided once the
        run has gone past it; the run's last report carries the exact number.
        """
        if not recovery_progress.receivers:
            return None
        try:
            estimate = self.dlq.estimate_window(start, end)
        except Exception as error:  # the run itself reports a DLQ it cannot read
            logger.debug("could not estimate the window for progress: %s", error)
            estimate = 0

        def send(done: int, counts: dict[str, int], last: bool = False) -> None:
            total = done if last else max(estimate, done)
            send_isolated(recovery_progress, self, done=done, total=total, counts=counts, start=start, end=end,
                          received=received)

        return send

    def _announce_failure(self, error: BaseException, start: Any, end: Any, received: Window | None = None) -> None:
        text, level = str(error), logging.ERROR
        if isinstance(error, ConfigurationError):  # logged once until it changes (the daemon retries)
            text = explain(error)
            level = logging.DEBUG if text == self._refusal else logging.ERROR
            self._refusal, error.logged = text, True
        logger.log(level, "recovery of outage window %s..%s failed: %s", iso_time(start), iso_time(end), text)
        logger.debug("recovery failure detail", exc_info=error)
        send_isolated(recovery_failed, self, error=error, start=start, end=end, received=received)


def _covers(run: Run, start: Any, end: Any) -> bool:
    low, high = whole_seconds(*validate_window(start, end))
    return run.start is not None and run.end is not None and run.start <= low and high <= run.end

