"""The plugin's tasks, as Stash runs them from Settings > Tasks, and every call they make into the library.

The Stash plugin is a front door like the command line: its tasks and its hook call these
thin functions, which call the same library the CLI calls (``RecoveryPlugin`` for real runs
and previews, the one outage source and its summary for the report), and log what it did
to Stash's log (one line per fact) and its progress to Stash's task bar. Nothing here
selects entries or decides an outcome itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..engine import RECOVERY_CHUNK, EntryOutcome, Observer, RecoveryResult, Selection, outcome_word, plural
from ..errors import ConfigurationError
from ..formatting import describe_window, format_duration, format_time, truncate
from ..outages import Baseline, OutageSource, OutageSummary, summarize_outages
from ..plex.health import PlexConnection
from ..plugin import Preview, RecoveryPlugin, Run
from ..signals import recovery_progress
from ..stash.connection import StashConnection
from ..state import CLI_LOCK_WAIT, PendingWindows, recovery_lock
from ..subscribers import load_subscribers
from ..sync_queue.dlq import DLQ_FILE_NAME, DeadLetterQueue, DlqWindow, whole_seconds
from ..worker.outage_history import OutageHistory
from .protocol import RecoverySettings, ServerConnection, SettingsError, read_settings

__all__ = ['RecoveryContext', 'RecoveryRuns', 'first_start', 'keep_pending', 'last_outage', 'note_outage_handled', 'open_context', 'outage_figures', 'preview', 'preview_size', 'recover', 'retry_pending', 'PREVIEW_LINE_LIMIT', 'TASK_MODES', 'TaskOutcome', 'TaskRun', 'chunk_progress']


# ==== tasks =====================================================================================
# Every call the Stash plugin makes into the recovery library, in one place.
#
# The Stash plugin is a front door like the command line: its tasks and its hook call these
# thin functions, which call the same library the CLI calls (``RecoveryPlugin`` for real runs,
# the engine's dry run for a preview, the outage history and its summary for the report).
# Nothing here selects entries or decides an outcome itself.

#: Seconds Plex and Stash get to answer one request.
PLEX_TIMEOUT = 5.0
STASH_TIMEOUT = 10.0


@dataclass
class RecoveryContext:
    """The data directory and the (lazy) Plex and Stash clients a run uses; ``close`` when done.

    Attributes:
        data_dir: PlexSync's data directory.
        plex: A lazily connected Plex client.
        stash: A lazily connected Stash client (Stash's plugin session).
        settings: Where Plex is, and what to recover.
        lock_wait: Most seconds a run waits for another recovery's lock (the hook waits less).
    """

    data_dir: Path
    plex: Any
    stash: Any
    settings: RecoverySettings = field(repr=False)
    lock_wait: float = CLI_LOCK_WAIT

    def close(self) -> None:
        """Close both HTTP sessions."""
        self.plex.close()
        self.stash.close()


@dataclass(frozen=True)
class RecoveryRuns:
    """What a real run did.

    Attributes:
        results: Each completed run (a window, and any pending window retried with it).
        covering: The run that covered the asked window, or None when it failed.
        pending: The windows still waiting for a retry afterwards.
    """

    results: list[RecoveryResult]
    covering: RecoveryResult | None
    pending: list[tuple[float, float]]


def open_context(
    data_dir: Path, server: ServerConnection, on_secret: Callable[[str], None] = lambda secret: None
) -> RecoveryContext:
    """Read the settings from Stash (over its plugin session) and prepare the Plex client.

    Args:
        data_dir: PlexSync's data directory.
        server: Stash's connection details from the plugin input.
        on_secret: Told the Plex token before anything could log it.

    Raises:
        SettingsError: A setting is missing or unusable (the message names it).
        StashUnavailable: Stash could not be asked.
    """
    load_subscribers()  # once per process; PLEXSYNC_RECOVERY_NO_SUBSCRIBERS=1 turns it off
    stash = StashConnection(server.url, timeout=STASH_TIMEOUT, session_cookie=server.session_cookie)
    try:
        settings = read_settings(stash)
        on_secret(settings.plex_token)
        if settings.request_timeout != stash.deadline:  # reconnects with the configured deadline
            stash.close()
            stash.deadline = settings.request_timeout
        deadline = settings.request_timeout
        plex = PlexConnection(settings.plex_url, settings.plex_token, timeout=min(PLEX_TIMEOUT, deadline), deadline=deadline)
    except ValueError as error:
        stash.close()
        raise SettingsError(f"setting plex_url: {error}") from None
    except BaseException:
        stash.close()
        raise
    return RecoveryContext(data_dir, plex, stash, settings)


def last_outage(data_dir: Path) -> tuple[float, float] | None:
    """The newest closed outage (PlexSync's or the watch daemon's), as ``recover --last-outage`` picks it."""
    return OutageSource(data_dir).last_closed_window()


def _dry_run_window(context: RecoveryContext, start: float, end: float) -> DlqWindow | None:
    if not (context.data_dir / DLQ_FILE_NAME).exists():  # a preview never creates PlexSync's file
        return None
    selection = Selection(context.settings.include_optional, context.settings.outage_casualties)
    return selection.window(DeadLetterQueue(context.data_dir), *whole_seconds(start, end))


def preview_size(context: RecoveryContext, start: float, end: float) -> int:
    """How many DLQ entries a preview of the window will judge."""
    window = _dry_run_window(context, start, end)
    return 0 if window is None else len(window)


def preview(context: RecoveryContext, start: float, end: float, observer: Observer) -> Preview:
    """The CLI's ``recover --dry-run``: ask every gate for the window, write nothing; ``observer`` hears each entry."""
    if _dry_run_window(context, start, end) is None:
        return Preview(*whole_seconds(start, end), RecoveryResult(dry_run=True), ())
    plugin = _plugin(context)
    return plugin.preview(start, end, observer=observer)


def _plugin(context: RecoveryContext) -> RecoveryPlugin:
    """The recovery API over the context; its queue opens on the first real run (``close`` it)."""
    return RecoveryPlugin(DeadLetterQueue(context.data_dir), None, context.stash, context.plex, context.data_dir,
                          include_optional=context.settings.include_optional,
                          outage_casualties=context.settings.outage_casualties, lock_wait=context.lock_wait)


def _runs(
    context: RecoveryContext,
    action: Callable[[RecoveryPlugin], list[Run]],
    window: Any = None,
    progress: Callable[[float], None] | None = None,
) -> RecoveryRuns:
    plugin = _plugin(context)

    def on_progress(sender: Any, *, done: int, total: int, **kwargs: Any) -> None:
        if progress is not None and total:
            progress(min(done / total, 1.0))

    try:
        with recovery_progress.connected_to(on_progress, sender=plugin):
            runs = action(plugin)
        pending = plugin.pending_windows()
    finally:
        plugin.close()
    refused = next((run.error for run in runs if isinstance(run.error, ConfigurationError)), None)
    if refused is not None:
        raise refused  # the window stays pending; the task fails naming the setting to fix
    results = [run.result for run in runs if run.result is not None]
    covering = None
    if window is not None:
        low, high = whole_seconds(*window)
        covering = next((run.result for run in reversed(runs) if run.result is not None and run.start is not None
                         and run.end is not None and run.start <= low and high <= run.end), None)
    return RecoveryRuns(results, covering, pending)


def recover(
    context: RecoveryContext, start: float, end: float, progress: Callable[[float], None] | None = None
) -> RecoveryRuns:
    """Recover one window through ``RecoveryPlugin.recover`` (pending windows are retried with it).

    ``progress(fraction)`` is told after every chunk of each run (``recovery_progress``).

    Raises:
        ConfigurationError: Plex refused the token or Stash the session; the window stays pending.
    """
    return _runs(context, lambda plugin: plugin.recover(start, end), (start, end), progress)


def retry_pending(context: RecoveryContext, progress: Callable[[float], None] | None = None) -> RecoveryRuns:
    """Retry every pending window through ``RecoveryPlugin.retry_pending``; ``progress`` as for ``recover``."""
    return _runs(context, lambda plugin: plugin.retry_pending(), progress=progress)


def outage_figures(data_dir: Path, now: float | None = None) -> tuple[list[dict[str, Any]], OutageSummary]:
    """PlexSync's outage history and its summary, as ``plexsync-recovery outages`` shows them."""
    records = OutageHistory(data_dir).get_history()
    return records, summarize_outages(records, time.time() if now is None else now)


def first_start(data_dir: Path, catch_up_days: float, now: float | None = None) -> Baseline:
    """The first start in ``data_dir``, as the daemon's: outages of the last ``catch_up_days`` days stay to recover.

    Later calls change nothing (see ``OutageSource.take_baseline``).
    """
    return OutageSource(data_dir).take_baseline(catch_up_days, now)


def note_outage_handled(data_dir: Path, start: float, end: float) -> None:
    """Note the window handled for every outage it overlaps, where every door looks, so none recovers it twice."""
    OutageSource(data_dir).mark_handled(start, end)


def keep_pending(data_dir: Path, start: float, end: float) -> None:
    """Keep a window pending for a later retry when its recovery could not even start.

    The outages it overlaps are then handled: the pending window carries them, and every
    retry of pending windows recovers it.
    """
    with recovery_lock(data_dir):
        PendingWindows(data_dir).add(*whole_seconds(start, end))
    note_outage_handled(data_dir, start, end)


# ==== task modes ================================================================================
# The plugin's four tasks, as Stash runs them from Settings > Tasks: call the library, log what it did.
#
# Each task is a thin front door over the calls above; what it shows goes to Stash's log (one
# line per fact) and its progress to Stash's task bar.

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]

#: A preview logs at most this many entries one by one (then counts the rest).
PREVIEW_LINE_LIMIT = 1000


class TaskRun:
    """What a task works with: the data directory, the task bar, and a recovery context opened on first use.

    Args:
        data_dir: PlexSync's data directory.
        show: Shows a fraction done in Stash's task bar.
        opener: Opens the context (reads the settings from Stash); called at most once.
    """

    def __init__(self, data_dir: Path, show: Progress, opener: Callable[[], RecoveryContext]) -> None:
        self.data_dir = data_dir
        self.show = show
        self._opener = opener
        self._context: RecoveryContext | None = None

    def context(self) -> RecoveryContext:
        """The recovery context (Plex and Stash clients), opened now if needed."""
        if self._context is None:
            self._context = self._opener()
        return self._context

    def close(self) -> None:
        """Close the context's sessions, if it was opened."""
        if self._context is not None:
            self._context.close()


@dataclass(frozen=True)
class TaskOutcome:
    """A task's one-line summary, whether it completed (False: Stash shows it as an error), and its events.

    ``events`` are the JSON events (:mod:`..events`) of the runs the task made, as
    ``watch --json`` prints them.
    """

    summary: str
    ok: bool = True
    events: tuple[dict[str, Any], ...] = ()


def chunk_progress(total: int, show: Progress, then: Observer | None = None) -> Observer:
    """An observer that counts entries and shows the fraction done once per chunk and at the end.

    The one place progress is computed; ``then`` is also told every entry.
    """
    done = 0

    def observe(seen: EntryOutcome) -> None:
        nonlocal done
        done += 1
        if then is not None:
            then(seen)
        if done % RECOVERY_CHUNK == 0 or done >= total:
            show(done / total if total else 1.0)

    return observe


def _no_outage(run: TaskRun) -> TaskOutcome:
    logger.info("no closed outage is recorded in %s: nothing to do", run.data_dir / "outage_history.json")
    return TaskOutcome("nothing to do: no closed outage recorded")


def preview_last_outage(run: TaskRun) -> TaskOutcome:
    """Dry run of the newest closed outage: every entry's outcome in the log, nothing changed."""
    window = last_outage(run.data_dir)
    if window is None:
        return _no_outage(run)
    context, show = run.context(), run.show
    total = preview_size(context, *window)
    logger.info("preview of outage %s: %s to judge; nothing is changed", describe_window(*window), plural(total, "DLQ entry"))
    show(0.0)
    seen_preview = preview(context, *window, chunk_progress(total, show))
    result, rows = seen_preview.result, seen_preview.entries
    for seen in rows[:PREVIEW_LINE_LIMIT]:
        logger.info("DLQ entry %s (scene %s, %s, failed %s): %s - %s", seen.dlq_id, seen.scene_id, seen.error_type,
                    seen.failed_at, outcome_word(seen.outcome, dry_run=True), truncate(seen.detail, 120))
    if len(rows) > PREVIEW_LINE_LIMIT:
        logger.info("... and %s more (counted below)", plural(len(rows) - PREVIEW_LINE_LIMIT, "entry"))
    logger.info("preview: %s", result)
    show(1.0)
    return TaskOutcome(f"preview: {result}")


def _report_runs(runs: RecoveryRuns, what: str) -> TaskOutcome:
    for result in runs.results:
        logger.info("run %s: %s", result.run_id, result)
    for start, end in runs.pending:
        logger.warning("window %s stays pending: Plex or Stash did not answer; it is retried later", describe_window(start, end))
    recovered = sum(result.recovered for result in runs.results)
    ok = not runs.pending and all(not result.failed for result in runs.results)
    return TaskOutcome(f"{what}: {plural(recovered, 'job')} recovered; {plural(len(runs.pending), 'window')} pending", ok)


def recover_last_outage(run: TaskRun) -> TaskOutcome:
    """Recover the newest closed outage (and any pending window it touches)."""
    window = last_outage(run.data_dir)
    if window is None:
        return _no_outage(run)
    context = run.context()
    logger.info("recovering outage %s", describe_window(*window))
    run.show(0.0)
    runs = recover(context, *window, progress=run.show)
    run.show(1.0)
    if runs.covering is None:
        return TaskOutcome(f"recovery of {describe_window(*window)} failed (see the log)", ok=False)
    return _report_runs(runs, "recovery")


def retry_pending_windows(run: TaskRun) -> TaskOutcome:
    """Retry every window a deferred run left pending."""
    context = run.context()
    run.show(0.0)
    runs = retry_pending(context, progress=run.show)
    run.show(1.0)
    if not runs.results and not runs.pending:
        logger.info("no pending window: nothing to retry")
        return TaskOutcome("nothing to retry")
    return _report_runs(runs, "retry")


def outage_report(run: TaskRun) -> TaskOutcome:
    """PlexSync's outage history with MTTR, MTBF and availability (Plex and Stash are not asked)."""
    records, summary = outage_figures(run.data_dir)
    if not records:
        logger.info("no outage recorded in %s", run.data_dir / "outage_history.json")
        return TaskOutcome("no outage recorded")
    for record in records:
        ended = record.get("ended_at")
        lasted = "ongoing" if ended is None else format_duration(float(ended) - float(record["started_at"]))
        jobs = record.get("jobs_affected")
        logger.info("outage from %s to %s (%s), %s affected", format_time(record["started_at"]), format_time(ended),
                    lasted, plural(jobs, "job") if isinstance(jobs, int) else f"{jobs} jobs")
    availability = "n/a" if summary.availability_percent is None else f"{summary.availability_percent:.3f}%"
    text = (f"{plural(summary.count, 'outage')}{' (one ongoing)' if summary.ongoing else ''}; MTTR"
            f" {format_duration(summary.mttr_seconds)}; MTBF {format_duration(summary.mtbf_seconds)};"
            f" downtime {format_duration(summary.downtime_seconds)}; availability {availability}")
    logger.info("%s", text)
    return TaskOutcome(text)


#: ``defaultArgs.mode`` of each task in the manifest -> what it runs.
TASK_MODES: dict[str, Callable[[TaskRun], TaskOutcome]] = {
    "preview_last_outage": preview_last_outage,
    "recover_last_outage": recover_last_outage,
    "retry_pending": retry_pending_windows,
    "outage_report": outage_report,
}
