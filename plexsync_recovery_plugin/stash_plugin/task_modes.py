"""The plugin's four tasks, as Stash runs them from Settings > Tasks: call the library, log what it did.

Each task is a thin front door over :mod:`.tasks`; what it shows goes to Stash's log (one
line per fact) and its progress to Stash's task bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..cli.output import format_duration, format_time, truncate
from ..sync_queue.dlq_recovery import RECOVERY_CHUNK, EntryOutcome, Observer
from ..engine import outcome_word, plural
from . import tasks

__all__ = ["PREVIEW_LINE_LIMIT", "TASK_MODES", "TaskOutcome", "TaskRun", "chunk_progress"]

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

    def __init__(self, data_dir: Path, show: Progress, opener: Callable[[], tasks.RecoveryContext]) -> None:
        self.data_dir = data_dir
        self.show = show
        self._opener = opener
        self._context: tasks.RecoveryContext | None = None

    def context(self) -> tasks.RecoveryContext:
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


def _span(start: float, end: float) -> str:
    return f"{format_time(start)} .. {format_time(end)}"


def _no_outage(run: TaskRun) -> TaskOutcome:
    logger.info("no closed outage is recorded in %s: nothing to do", run.data_dir / "outage_history.json")
    return TaskOutcome("nothing to do: no closed outage recorded")


def preview_last_outage(run: TaskRun) -> TaskOutcome:
    """Dry run of the newest closed outage: every entry's outcome in the log, nothing changed."""
    window = tasks.last_outage(run.data_dir)
    if window is None:
        return _no_outage(run)
    context, show = run.context(), run.show
    total = tasks.preview_size(context, *window)
    logger.info("preview of outage %s: %s to judge; nothing is changed", _span(*window), plural(total, "DLQ entry"))
    show(0.0)
    preview = tasks.preview(context, *window, chunk_progress(total, show))
    result, rows = preview.result, preview.entries
    for seen in rows[:PREVIEW_LINE_LIMIT]:
        logger.info("DLQ entry %s (scene %s, %s, failed %s): %s - %s", seen.dlq_id, seen.scene_id, seen.error_type,
                    seen.failed_at, outcome_word(seen.outcome, dry_run=True), truncate(seen.detail, 120))
    if len(rows) > PREVIEW_LINE_LIMIT:
        logger.info("... and %s more (counted below)", plural(len(rows) - PREVIEW_LINE_LIMIT, "entry"))
    logger.info("preview: %s", result)
    show(1.0)
    return TaskOutcome(f"preview: {result}")


def _report_runs(runs: tasks.RecoveryRuns, what: str) -> TaskOutcome:
    for result in runs.results:
        logger.info("run %s: %s", result.run_id, result)
    for start, end in runs.pending:
        logger.warning("window %s stays pending: Plex or Stash did not answer; it is retried later", _span(start, end))
    recovered = sum(result.recovered for result in runs.results)
    ok = not runs.pending and all(not result.failed for result in runs.results)
    return TaskOutcome(f"{what}: {plural(recovered, 'job')} recovered; {plural(len(runs.pending), 'window')} pending", ok)


def recover_last_outage(run: TaskRun) -> TaskOutcome:
    """Recover the newest closed outage (and any pending window it touches)."""
    window = tasks.last_outage(run.data_dir)
    if window is None:
        return _no_outage(run)
    context = run.context()
    logger.info("recovering outage %s", _span(*window))
    run.show(0.0)
    runs = tasks.recover(context, *window, progress=run.show)
    run.show(1.0)
    if runs.covering is None:
        return TaskOutcome(f"recovery of {_span(*window)} failed (see the log)", ok=False)
    return _report_runs(runs, "recovery")


def retry_pending_windows(run: TaskRun) -> TaskOutcome:
    """Retry every window a deferred run left pending."""
    context = run.context()
    run.show(0.0)
    runs = tasks.retry_pending(context, progress=run.show)
    run.show(1.0)
    if not runs.results and not runs.pending:
        logger.info("no pending window: nothing to retry")
        return TaskOutcome("nothing to retry")
    return _report_runs(runs, "retry")


def outage_report(run: TaskRun) -> TaskOutcome:
    """PlexSync's outage history with MTTR, MTBF and availability (Plex and Stash are not asked)."""
    records, summary = tasks.outage_report(run.data_dir)
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
