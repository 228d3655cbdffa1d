"""The command line's subcommands: each parses its flags, calls the library, and prints what it answers.

``recover`` (one window now, or a dry run), ``outages`` and ``dlq`` (read-only reports),
``watch`` (the daemon in the foreground), ``stash-plugin`` and ``subscribers``. None of them
selects entries, decodes a job or interprets an error itself: ``RecoveryPlugin``, the one
outage source and ``errors`` do, so every door gives the same answer.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import textwrap
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..engine import OUTCOME_LABELS, count_rows, outcome_word, plural
from ..errors import ConfigurationError
from ..events import window_fields
from ..formatting import Output, describe_window, format_duration, format_time, iso_time, truncate
from ..outages import CATCH_UP_DAYS, summarize_intervals
from ..state import CLI_LOCK_WAIT
from ..subscribers import DISABLE_VARIABLE, ENTRY_POINT_GROUP, installed_subscribers
from .console import add_listener_arguments, listeners
from .settings import (
    EXIT_STATUS,
    REPORT_FLAGS,
    TIME_HELP,
    TOKEN_HINT,
    CliError,
    Settings,
    UsageError,
    add_common_arguments,
    add_http_arguments,
    check_error_types,
    http_settings,
    non_negative_days,
    non_negative_int,
    open_dlq,
    open_job_queue,
    open_status_server,
    parse_window,
    positive_int,
    positive_seconds,
    refuse_rejected_plex_token,
    require_stash_key_accepted,
    require_web_extra,
)

if TYPE_CHECKING:
    from ..engine import RecoveryResult
    from ..stash_plugin.install import Build, PlannedFile, Removal
    from ..state import PluginState
    from ..plugin import Preview, RecoveryPlugin, Run
    from ..worker.watch import WatchSettings

__all__ = ['OUTCOME_LABELS', 'last_closed_outage', 'register_recover', 'run_recover', 'register_reports', 'run_dlq', 'run_outages', 'SignalSafeEvent', 'register_watch', 'run_watch', 'register_stash_plugin', 'run_stash_plugin', 'register_forget', 'run_forget', 'register_subscribers', 'run_subscribers']


# ==== recover cmd ===============================================================================
# ``plexsync-recovery recover``: recover one outage window now, or show what recovering it would do.
#
# A real run goes through ``RecoveryPlugin.recover_window`` so that everything the daemon
# guarantees holds here too: the window is saved as pending first (and stays pending if
# Plex or Stash cannot answer), overlapping pending windows are merged, and the recovery
# lock keeps it from running beside another recovery. ``--dry-run`` asks the same three
# gates but writes nothing (no queue row, no ledger row, no pending window).

_EPILOG = f"""{textwrap.fill(TIME_HELP, 78)}

exit status: 0 when every entry was handled, 1 when some failed or the window stays
pending (Plex or Stash did not answer), 2 on bad flags or configuration (Stash
rejecting the API key included)."""


def register_recover(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``recover`` subcommand."""
    parser = subparsers.add_parser(
        "recover",
        help="recover the DLQ entries of one outage window now",
        description=textwrap.fill(
            "Re-queue the DLQ entries that failed inside an outage window, through the three gates"
            " (Plex answers, scene not already queued, scene still in Stash).",
            78,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    window = parser.add_argument_group("window (give --start and --end, or --last-outage)")
    window.add_argument("--start", metavar="TIME", help="window start, inclusive (no zone = UTC)")
    window.add_argument("--end", metavar="TIME", help="window end, inclusive (no zone = UTC)")
    window.add_argument(
        "--last-outage", action="store_true", help="the newest closed outage of <data-dir>/outage_history.json"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen to each entry; change nothing"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="also redrive entries an earlier recovery already redrove, if no live job covers their scene"
        " (after PlexSync's queue was cleared by hand); combine with --dry-run to preview",
    )
    parser.add_argument(
        "--lock-wait",
        type=positive_seconds,
        default=CLI_LOCK_WAIT,
        metavar="SECONDS",
        help=f"most seconds to wait while another recovery runs (default {CLI_LOCK_WAIT:g}); the window then"
        " stays pending",
    )
    add_listener_arguments(parser)
    add_common_arguments(parser)
    parser.set_defaults(func=run_recover)


def run_recover(args: argparse.Namespace) -> int:
    """Recover (or dry-run) the window; return the exit code."""
    settings: Settings = args.settings
    out: Output = args.out
    data_dir = settings.require_data_dir()
    window = parse_window(args.start, args.end)
    if args.last_outage:
        if window is not None:
            raise UsageError("give either --start/--end or --last-outage, not both")
        window = last_closed_outage(data_dir)
        if window is None:
            _nothing_to_do(out, None, None, "no closed outage is recorded in the outage history")
            return 0
    elif window is None:
        raise UsageError("give the window: --start TIME --end TIME, or --last-outage")
    start, end = window
    with listeners(args, out, progress=True):
        refuse_rejected_plex_token(settings)
        if args.dry_run:
            return _dry_run(settings, out, data_dir, start, end, again=args.again)
        return _recover(settings, out, data_dir, start, end, again=args.again, lock_wait=args.lock_wait)


def last_closed_outage(data_dir: Path) -> tuple[float, float] | None:
    """Return ``(start, end)`` of the newest closed outage (PlexSync's history or the watch daemon's), or None."""
    from ..outages import OutageSource

    return OutageSource(data_dir).last_closed_window()


def _nothing_to_do(out: Output, start: float | None, end: float | None, why: str, *,
                   received: tuple[float, float] | None = None, **extra: Any) -> None:
    from ..engine import RecoveryResult

    if out.json_mode:
        out.json({**window_fields(start, end, received, searched=start is not None), **RecoveryResult().as_dict(),
                  "nothing_to_do": why, **extra})
    else:
        out.line(f"Nothing to do: {why}.")


@contextmanager
def _plugin(settings: Settings, data_dir: Path, lock_wait: float = CLI_LOCK_WAIT) -> Iterator["RecoveryPlugin"]:
    """The recovery API over ``data_dir``, with the CLI's clients; the queue opens only for a real run."""
    from ..plugin import RecoveryPlugin

    plex = settings.plex_connection()
    stash = settings.stash_connection()
    plugin = RecoveryPlugin(
        open_dlq(data_dir), None, stash, plex, data_dir, include_optional=settings.include_optional,
        outage_casualties=settings.outage_casualties, lock_wait=lock_wait,
    )
    try:
        yield plugin
    finally:
        plugin.close()
        plex.close()
        stash.close()


def _recover(
    settings: Settings, out: Output, data_dir: Path, start: float, end: float, *, again: bool, lock_wait: float
) -> int:
    with _plugin(settings, data_dir, lock_wait) as plugin:
        require_stash_key_accepted(plugin.stash)
        runs = plugin.recover(start, end, again=again)
        pending = plugin.pending_windows()
    covering = _covering_run(runs, start, end)
    if covering.result is None:
        if isinstance(covering.error, ConfigurationError):
            raise covering.error  # exit 2, the same words as before the run
        raise CliError(f"recovery of {describe_window(start, end)} failed: {covering.error}", logged=True)  # the plugin said it
    result = covering.result
    others = [run for run in runs if run is not covering and run.result is not None]
    if out.json_mode:
        out.json({
            **window_fields(covering.start, covering.end, (start, end)), **result.as_dict(),
            "other_runs": [{**window_fields(run.start, run.end), **run.result.as_dict()} for run in others if run.result],
            "pending_windows": [{"start": iso_time(low), "end": iso_time(high)} for low, high in pending],
        })
        return _finish(out, settings, result)
    if result.total_dlq_entries == 0 and not result.deferred:
        out.line(f"Nothing to do: no DLQ entry to recover in {describe_window(covering.start, covering.end, (start, end))}.")
    else:
        out.line(f"Recovery of {describe_window(covering.start, covering.end, (start, end))} (run {result.run_id})")
        out.table(["outcome", "entries"], count_rows(result))
        if result.recovered_scene_ids:
            out.line("re-queued scenes: " + truncate(", ".join(map(str, result.recovered_scene_ids)), 200))
    for run in others:
        out.line(f"also retried pending window {describe_window(run.start, run.end)}: {run.result}")
    for window in pending:
        out.line(f"still pending: {describe_window(*window)}")
    return _finish(out, settings, result)


def _covering_run(runs: list["Run"], start: float, end: float) -> "Run":
    """The run whose window holds ``start..end`` (the last one, or the failure that stopped the runs)."""
    from ..sync_queue.dlq import whole_seconds

    low, high = whole_seconds(start, end)
    for run in reversed(runs):
        if run.start is not None and run.end is not None and run.start <= low and high <= run.end:
            return run
    return runs[-1]


def _finish(out: Output, settings: Settings, result: "RecoveryResult") -> int:
    """Print why the run is incomplete (one line) and return 1, or return 0 when it is complete."""
    dry_run = result.dry_run
    reasons = []
    fate = "could not be judged" if dry_run else "deferred"
    if result.skipped_plex_down:
        reasons.append(f"Plex at {settings.plex_url} did not answer its health check"
                       f" ({_entries(result.skipped_plex_down)} {fate})")
    if result.skipped_stash_error:
        reasons.append(f"Stash at {settings.stash_url} could not answer ({_entries(result.skipped_stash_error)} {fate})")
    if result.failed:
        reasons.append(f"{_entries(result.failed)} failed")
    if result.deferred and not reasons:
        reasons.append("part of the window was deferred")
    if not reasons:
        return 0
    tail = "" if dry_run or not result.deferred else "; the window stays pending for a retry"
    out.error(("dry run: " if dry_run else "recovery incomplete: ") + "; ".join(reasons) + tail)
    return 1


def _entries(count: int) -> str:
    return plural(count, "entry")


def _dry_run(settings: Settings, out: Output, data_dir: Path, start: float, end: float, *, again: bool) -> int:
    from ..engine import Selection
    from ..sync_queue.dlq import DLQ_FILE_NAME, whole_seconds

    received = (start, end)
    start, end = whole_seconds(start, end)  # the window a real run selects
    selection = Selection(settings.include_optional, settings.outage_casualties)
    why = f"no {selection.describe()} entry in the DLQ between {describe_window(start, end)}"
    if not (data_dir / DLQ_FILE_NAME).exists():  # never create PlexSync's file
        _nothing_to_do(out, start, end, why, received=received, dry_run=True, entries=[])
        return 0
    with _plugin(settings, data_dir) as plugin:
        window = plugin.window_entries(start, end)
        if len(window) == 0:
            _nothing_to_do(out, start, end, why, received=received, dry_run=True, entries=[],
                           left_by_error_type=plugin.note_left(window))
            return 0
        require_stash_key_accepted(plugin.stash)
        preview = plugin.preview(start, end, again=again)
    _print_preview(out, preview, received)
    return _finish(out, settings, preview.result)


def _print_preview(out: Output, preview: "Preview", received: tuple[float, float]) -> None:
    rows = [
        {"id": seen.dlq_id, "scene_id": seen.scene_id, "error_type": seen.error_type, "failed_at": seen.failed_at,
         "outcome": outcome_word(seen.outcome, dry_run=True), "detail": seen.detail}
        for seen in preview.entries
    ]
    if out.json_mode:
        out.json({**window_fields(preview.start, preview.end, received), **preview.result.as_dict(), "entries": rows})
        return
    out.line(f"Dry run for {describe_window(preview.start, preview.end, received)}: nothing was changed")
    out.table(
        ["DLQ id", "scene", "error type", "failed at", "outcome", "detail"],
        [(r["id"], r["scene_id"], r["error_type"], r["failed_at"], r["outcome"], truncate(r["detail"], 70)) for r in rows],
    )
    out.line()
    out.table(["outcome", "entries"], count_rows(preview.result))


# ==== report cmds ===============================================================================
# ``plexsync-recovery outages`` and ``plexsync-recovery dlq``: read-only reports on a data directory.
#
# ``outages`` lists PlexSync's and the watch daemon's outages with MTTR, MTBF and availability;
# ``dlq`` counts the dead letters by error type and by day and lists the entries of a window.
# Neither writes anything: ``dlq.db`` is opened read-only and a missing one reads as an empty DLQ.

DEFAULT_ENTRY_LIMIT = 50


def register_reports(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``outages`` and ``dlq`` subcommands."""
    outages = subparsers.add_parser(
        "outages",
        help="list recorded Plex outages with MTTR, MTBF and availability",
        description="List the outages PlexSync recorded in <data-dir>/outage_history.json (source plexsync; "
        "its records of one outage are shown as one) and those the watch daemon detected (source watch), "
        "and summarize them, counting overlapping outages once: MTTR is the mean duration of closed "
        "outages, MTBF the mean time between consecutive outage starts, availability 1 - downtime/span "
        "from the first recorded start to now.",
        epilog=EXIT_STATUS["report"],
    )
    add_common_arguments(outages, only=REPORT_FLAGS)
    outages.set_defaults(func=run_outages)

    dlq = subparsers.add_parser(
        "dlq",
        help="count dead letters by error type and day; list a window's entries",
        description="Count the DLQ entries by error type and by day (UTC); with --start/--end also list the "
        "entries that failed inside that window.",
        epilog=f"{TIME_HELP}\n\n{EXIT_STATUS['report']}",
    )
    dlq.add_argument("--start", metavar="TIME", help="list entries failed at or after TIME (with --end)")
    dlq.add_argument("--end", metavar="TIME", help="list entries failed at or before TIME (with --start)")
    dlq.add_argument(
        "--error-type",
        action="append",
        metavar="TYPE",
        help="only this error type (repeatable; default: all) in the daily counts and the list",
    )
    dlq.add_argument(
        "--limit",
        type=non_negative_int,
        default=DEFAULT_ENTRY_LIMIT,
        metavar="N",
        help=f"list at most N entries (default {DEFAULT_ENTRY_LIMIT}; 0 lists all)",
    )
    add_common_arguments(dlq, only=REPORT_FLAGS)
    dlq.set_defaults(func=run_dlq)


# -- outages ---------------------------------------------------------------------------------


def run_outages(args: argparse.Namespace) -> int:
    """Print both sources' outages and their summary; return the exit code."""
    from ..outages import OutageSource
    from ..worker.outage_history import HISTORY_FILE_NAME

    settings: Settings = args.settings
    out: Output = args.out
    data_dir = settings.require_data_dir()
    outages = OutageSource(data_dir).outages()
    now = time.time()
    summary = summarize_intervals(outages, now)
    if out.json_mode:
        out.json({"outages": [o.as_dict(now) for o in outages], "summary": asdict(summary), "now": iso_time(now)})
        return 0
    if not outages:
        out.line(f"No outage recorded in {data_dir / HISTORY_FILE_NAME} or by the watch daemon.")
        return 0
    rows = [
        (
            o.source,
            format_time(o.started_at),
            "ongoing" if o.ongoing else format_time(o.ended_at),
            format_duration(o.duration(now)) + (" so far" if o.ongoing else ""),
            o.jobs_affected,
        )
        for o in outages
    ]
    out.table(["source", "start", "end", "duration", "jobs affected"], rows, align="llllr")
    out.line()
    availability = "n/a" if summary.availability_percent is None else f"{summary.availability_percent:.3f}%"
    out.table(
        ["summary (overlapping outages counted once)", "value"],
        [
            ("outages", f"{summary.count}{' (one ongoing)' if summary.ongoing else ''}"),
            ("MTTR (mean outage duration)", format_duration(summary.mttr_seconds)),
            ("MTBF (mean time between starts)", format_duration(summary.mtbf_seconds)),
            ("downtime", format_duration(summary.downtime_seconds)),
            (f"availability since {format_time(outages[0].started_at)}", availability),
        ],
    )
    return 0


# -- dlq -------------------------------------------------------------------------------------


@dataclass
class _DlqCounts:
    """What the ``dlq`` report read: counts, and a window's first entries when one was given."""

    path: Path
    wanted: list[str]
    window: tuple[float, float] | None
    by_type: dict[str, int] = field(default_factory=dict)
    by_day: list[tuple[str | None, int]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    in_window: int = 0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dlq": str(self.path),
            "total": sum(self.by_type.values()),
            "by_error_type": self.by_type,
            "by_day": [{"day": day, "count": count} for day, count in self.by_day],
            "error_types": self.wanted or None,
        }
        if self.window is not None:
            data.update(start=iso_time(self.window[0]), end=iso_time(self.window[1]),
                        entries_in_window=self.in_window, entries=self.entries)
        return data


def run_dlq(args: argparse.Namespace) -> int:
    """Print the DLQ counts (and a window's entries); return the exit code."""
    from ..sync_queue.dlq import DLQ_FILE_NAME

    settings: Settings = args.settings
    out: Output = args.out
    data_dir: Path = settings.require_data_dir()
    report = _DlqCounts(data_dir / DLQ_FILE_NAME, list(dict.fromkeys(args.error_type or [])),
                        parse_window(args.start, args.end))
    if report.path.exists():  # a missing DLQ is an empty one; a report never creates it
        _read_dlq(report, data_dir, args.limit)
    else:
        check_error_types(report.wanted, {})
    if out.json_mode:
        out.json(report.as_dict())
    elif not report.path.exists():
        out.line(f"No DLQ at {report.path}: nothing has been dead-lettered yet.")
    else:
        _print_dlq(out, report)
    return 0


def _read_dlq(report: _DlqCounts, data_dir: Path, limit: int) -> None:
    dlq = open_dlq(data_dir)
    report.by_type = dlq.get_error_summary()
    check_error_types(report.wanted, report.by_type)
    report.by_day = dlq.counts_by_day(report.wanted)
    if report.window is None:
        return
    types = report.wanted or [name for name in report.by_type if name is not None]
    selection = dlq.window(report.window[0], report.window[1], types)
    report.in_window = len(selection)
    for entry in selection:
        if limit and len(report.entries) >= limit:
            break
        report.entries.append({key: entry[key] for key in ("id", "scene_id", "error_type", "failed_at", "error_message")})


def _print_dlq(out: Output, report: _DlqCounts) -> None:
    by_type, entries = report.by_type, report.entries
    out.table(["error type", "entries"], [*by_type.items(), ("total", sum(by_type.values()))],
              title="DLQ entries by error type")
    out.line()
    scope = f" ({', '.join(report.wanted)})" if report.wanted else ""
    out.table(["day (UTC)", "entries"], report.by_day or [("-", 0)], title=f"DLQ entries by day{scope}", align="lr")
    if report.window is None:
        return
    out.line()
    out.line(f"Entries failed between {format_time(report.window[0])} and {format_time(report.window[1])}{scope}:"
             f" {report.in_window}")
    if entries:
        out.table(
            ["id", "scene", "error type", "failed at", "message"],
            [(e["id"], e["scene_id"], e["error_type"], e["failed_at"], truncate(e["error_message"])) for e in entries],
        )
    if report.in_window > len(entries):
        out.line(f"... and {report.in_window - len(entries)} more (--limit 0 lists all)")


# ==== watch cmd =================================================================================
# ``plexsync-recovery watch``: run the watch daemon in the foreground until SIGINT or SIGTERM.
#
# The daemon runs on the main thread. The clients are lazy, so it starts, and keeps
# probing, while Plex and Stash are both down, and while PlexSync has not created ``dlq.db``
# yet (it waits for the file and never creates it). SIGINT and SIGTERM ask it to stop; it
# finishes the tick it is in and returns, and the command exits 0 without a traceback. A
# second signal while it is finishing interrupts it (exit 130).

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalSafeEvent:
    """A stop flag that a signal handler may set: ``is_set``, ``set`` and ``wait`` like ``threading.Event``.

    ``threading.Event.set`` takes the event's internal lock; a signal handler that calls it
    while the main thread is inside ``Event.wait`` holding that same lock would deadlock.
    This flag takes no lock: ``set`` stores a bool and writes one byte to a pipe, and
    ``wait`` sleeps in ``select`` on that pipe, so it wakes at once.
    """

    def __init__(self) -> None:
        self._flag = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake a waiter (safe inside a signal handler)."""
        self._flag = True
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):  # pipe full or closed: the flag alone is enough
            pass

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds pass; return the flag."""
        if not self._flag:
            select.select([self._read_fd], [], [], timeout)
        return self._flag

    def close(self) -> None:
        """Release the pipe."""
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def register_watch(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``watch`` subcommand."""
    parser = subparsers.add_parser(
        "watch",
        help="probe Plex, record outages, and recover each one when it ends (foreground)",
        description="Probe Plex's /identity every --interval seconds. --fail-threshold failed probes in a row "
        "open an outage (dated from the last healthy probe before them), --recover-threshold healthy ones "
        "close it, and the closed outage's DLQ entries are recovered. Outages PlexSync records in "
        "outage_history.json are recovered too; the daemon keeps its own in recovery_state.db and never "
        "writes PlexSync's files. A token Plex rejects is reported, not taken for an outage. Logs state "
        "changes (-v: every probe). Stops cleanly on SIGINT or SIGTERM.",
        epilog=EXIT_STATUS["watch"],
    )
    parser.add_argument("--interval", type=positive_seconds, default=5.0, metavar="SECONDS", help="between probes (default 5)")
    parser.add_argument(
        "--fail-threshold", type=positive_int, default=3, metavar="N", help="failed probes that open an outage (default 3)"
    )
    parser.add_argument(
        "--recover-threshold", type=positive_int, default=2, metavar="N", help="healthy probes that close it (default 2)"
    )
    parser.add_argument(
        "--probe-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a probe waits for Plex (default: the smaller of 3 and --interval)",
    )
    parser.add_argument(
        "--retry-interval",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="while Plex is up, retry the outage windows still pending at most this often (default 60)",
    )
    parser.add_argument(
        "--catch-up-days",
        type=non_negative_days,
        default=CATCH_UP_DAYS,
        metavar="DAYS",
        help=f"on the first start in a data directory, recover the outages that ended in the last DAYS days"
        f" (default {CATCH_UP_DAYS:g}; 0: none); older ones are noted as handled",
    )
    add_http_arguments(parser)
    add_listener_arguments(parser)
    add_common_arguments(parser)
    parser.set_defaults(func=run_watch, log_level=logging.INFO, log_long_format=True)


def _install_handlers(stop: SignalSafeEvent, received: list[int]) -> dict[int, Any]:
    # No logging in here: writing to stderr from a handler can re-enter a write in progress.
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # asked twice: stop now
        received.append(signum)
        stop.set()

    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handle)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def run_watch(args: argparse.Namespace, *, on_ready: Callable[[Any], None] | None = None) -> int:
    """Run the daemon until a stop signal; return the exit code.

    Args:
        args: The parsed flags with ``settings`` attached.
        on_ready: Called with the daemon just before it starts (for tests).

    Raises:
        UsageError: A setting is out of range (the message names it).
    """
    from ..worker.watch import WatchDaemon

    settings: Settings = args.settings
    data_dir = settings.require_data_dir()
    watch_settings = _watch_settings(args)
    http = http_settings(args)
    if http is not None:
        require_web_extra()
    probe_timeout = watch_settings.probe_timeout
    plex = settings.plex_connection(timeout=probe_timeout)
    stash = settings.stash_connection()
    queues: list[Any] = []
    opener = _plugin_opener(settings, data_dir, plex, stash, queues, lock_wait=watch_settings.interval)
    stop = SignalSafeEvent()
    received: list[int] = []
    previous = _install_handlers(stop, received)
    try:
        with listeners(args, args.out, json_events=settings.json):  # --json: events on stdout, one per line
            # PlexSync creates dlq.db; until it has, the daemon watches and waits (it never creates it).
            plugin = opener() if _dlq_path(data_dir).exists() else opener
            daemon = WatchDaemon(plex, plugin, watch_settings, data_dir=data_dir)
            page = None if http is None else open_status_server(http, daemon, stash).start()  # on its own thread
            try:
                if on_ready is not None:
                    on_ready(daemon)
                daemon.run(stop)  # type: ignore[arg-type]  # duck-typed threading.Event
            finally:
                if page is not None:
                    page.stop()
        if received:
            logger.info("stopped by %s", signal.Signals(received[0]).name)
    finally:
        _restore_handlers(previous)
        stop.close()
        for queue in queues:
            queue.close()
        plex.close()
        stash.close()
    return 0


def _watch_settings(args: argparse.Namespace) -> "WatchSettings":
    """The daemon's timing from the flags.

    Raises:
        UsageError: A setting is out of range (the message names it).
    """
    from ..worker.watch import WatchSettings

    probe_timeout = args.probe_timeout if args.probe_timeout is not None else min(3.0, args.interval)
    try:
        return WatchSettings(
            interval=args.interval,
            fail_threshold=args.fail_threshold,
            recover_threshold=args.recover_threshold,
            probe_timeout=probe_timeout,
            retry_interval=args.retry_interval,
            token_hint=TOKEN_HINT,
            catch_up_days=args.catch_up_days,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _dlq_path(data_dir: Path) -> Path:
    from ..sync_queue.dlq import DLQ_FILE_NAME

    return data_dir / DLQ_FILE_NAME


def _plugin_opener(
    settings: Settings, data_dir: Path, plex: Any, stash: Any, queues: list[Any], *, lock_wait: float
) -> Any:
    """A function that opens the DLQ, the job queue and the plugin, refusing while ``dlq.db`` is missing.

    The plugin waits at most ``lock_wait`` (a tick) for another recovery's lock: a window it
    cannot run then stays pending and is retried on a later tick.
    """
    from ..plugin import RecoveryPlugin
    from ..sync_queue.dlq import DlqUnavailable

    def open_plugin() -> RecoveryPlugin:
        path = _dlq_path(data_dir)
        if not path.exists():
            raise DlqUnavailable(f"there is no {path.name} in {data_dir} yet (PlexSync creates it)")
        dlq = open_dlq(data_dir)
        queue = open_job_queue(data_dir)
        queues.append(queue)
        return RecoveryPlugin(
            dlq, queue, stash, plex, data_dir, include_optional=settings.include_optional,
            outage_casualties=settings.outage_casualties, lock_wait=lock_wait,
        )

    return open_plugin


# ==== stash plugin cmd ==========================================================================
# ``plexsync-recovery stash-plugin build|install|uninstall``: the Stash plugin's files, as a source
# index with its zip, or in Stash's plugins folder.

_ACTIONS = {"create": "wrote", "update": "updated", "unchanged": "unchanged", "remove": "removed",
            "foreign": "NOT ours, left alone"}


def register_stash_plugin(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``stash-plugin`` subcommand and its actions."""
    parser = subparsers.add_parser(
        "stash-plugin",
        help="the Stash plugin (recovery inside Stash, with PlexSync's settings): build, install, uninstall",
        description="Build the Stash plugin as a source for Stash's plugin manager, or install it into (and remove it"
        " from) Stash's plugins folder.",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    actions = parser.add_subparsers(dest="stash_plugin_action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="write the plugin's source index (index.yml) and zip for Stash's plugin manager",
        description="Write index.yml and PlexSyncRecovery.zip into DIR: add the index's address as a source in"
        " Stash (Settings > Plugins > Available Plugins > Add Source; file:///... works for a folder Stash can"
        " read) and install PlexSync Recovery from it. The zip holds the manifest, the launcher and this package's"
        " own code; Stash's Python gets the dependencies through PythonDepManager, or pip. The index is dated"
        " now, or $SOURCE_DATE_EPOCH (the same code and date give the same bytes).",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    build.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                       help="where to write them (created if missing)")
    build.set_defaults(func=run_stash_plugin)
    install = actions.add_parser(
        "install",
        help="write the plugin into Stash's plugins folder",
        description="Write the plugin (manifest, launcher, this package's own code: what the zip holds) into"
        " <plugins-dir>/PlexSyncRecovery/, or where an earlier copy of it is. Running it again changes nothing or"
        " updates its own files; it never overwrites a manifest or launcher it did not write. Then reload plugins"
        " in Stash (Settings > Plugins).",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    install.add_argument("--plugins-dir", required=True, metavar="DIR", help="Stash's plugins folder")
    install.add_argument("--print", action="store_true", help="show what it would write; write nothing")
    install.set_defaults(func=run_stash_plugin)
    uninstall = actions.add_parser(
        "uninstall",
        help="remove the plugin's files from Stash's plugins folder",
        description="Remove PlexSync Recovery's own files from Stash's plugins folder (also where Stash's plugin"
        " manager put them); anything else in its folder is left and listed. PlexSync and its data are not"
        " touched; 'forget' removes this plugin's state from PlexSync's data folder.",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    uninstall.add_argument("--plugins-dir", required=True, metavar="DIR", help="Stash's plugins folder")
    uninstall.set_defaults(func=run_stash_plugin)


def run_stash_plugin(args: argparse.Namespace) -> int:
    """Run the ``stash-plugin`` action; return the exit code.

    Raises:
        CliError: The folder is missing, or a file in the way is not the plugin's (exit 1).
        UsageError: ``SOURCE_DATE_EPOCH`` is not a number of seconds (exit 2).
    """
    from ..stash_plugin import install as files

    out: Output = args.out
    try:
        if args.stash_plugin_action == "build":
            return _print_build(out, files.build(args.out_dir))
        if args.stash_plugin_action == "uninstall":
            return _print_uninstall(out, args.plugins_dir, files.uninstall(args.plugins_dir))
        if args.print:
            return _print_plan(out, files.plan_install(args.plugins_dir))
        return _print_install(out, files.install(args.plugins_dir))
    except ValueError as error:
        raise UsageError(str(error)) from None
    except (files.ForeignFileError, FileNotFoundError) as error:
        raise CliError(str(error)) from None


def _print_build(out: Output, build: "Build") -> int:
    if out.json_mode:
        out.json({"index": str(build.index_path), "zip": str(build.zip_path), "sha256": build.sha256,
                  "version": build.version, "date": build.date, "files": build.files})
        return 0
    out.line(f"wrote: {build.zip_path} ({build.files} files, sha256 {build.sha256})")
    out.line(f"wrote: {build.index_path} (version {build.version}, {build.date} UTC)")
    out.line(f"In Stash: Settings > Plugins > Available Plugins > Add Source, with the address of"
             f" {build.index_path.name} ({build.index_path.resolve().as_uri()} if Stash can read this folder).")
    return 0


def _print_plan(out: Output, planned: "list[PlannedFile]") -> int:
    """``install --print``: the manifest and the launcher in full, then what happens to the package's files."""
    from ..stash_plugin.install import LAUNCHER_NAME, MANIFEST_NAME

    shown = (MANIFEST_NAME, LAUNCHER_NAME)
    for item in planned:
        if item.name in shown:
            action = "would be left alone: not ours" if item.action == "foreign" else item.action
            out.line(f"# {item.path} ({action})")
            out.line(item.content.decode("utf-8").rstrip("\n"))
            out.line()
    for item in planned:
        if item.name not in shown:
            out.line(f"# {item.path} ({item.action})")
    return 0


def _print_install(out: Output, done: "list[PlannedFile]") -> int:
    from ..stash_plugin.install import LAUNCHER_NAME, MANIFEST_NAME

    counts = Counter(item.action for item in done)
    if out.json_mode:
        out.json({"files": [{"path": str(item.path), "action": item.action} for item in done]})
        return 0
    for item in done:
        if item.action != "unchanged" or item.name in (MANIFEST_NAME, LAUNCHER_NAME):
            out.line(f"{_ACTIONS[item.action]}: {item.path}")
    out.line(", ".join(f"{count} {_ACTIONS[action]}" for action, count in sorted(counts.items())))
    out.line("Reload plugins in Stash (Settings > Plugins) to see PlexSync Recovery's tasks.")
    return 0


def _print_uninstall(out: Output, plugins_dir: str, removals: "list[Removal]") -> int:
    if out.json_mode:
        out.json({"folders": [{"folder": str(r.folder), "removed": [str(p) for p in r.removed],
                               "left": [str(p) for p in r.left]} for r in removals]})
        return 0
    if not removals:
        out.line(f"nothing to remove: PlexSync Recovery is not in {plugins_dir} or a folder of it")
        return 0
    for removal in removals:
        for path in removal.removed:
            out.line(f"removed: {path}")
        if removal.left:
            out.line(f"left in {removal.folder} (not PlexSync Recovery's): {', '.join(p.name for p in removal.left)}")
        else:
            out.line(f"removed: {removal.folder}")
    out.line("Reload plugins in Stash (Settings > Plugins). 'plexsync-recovery forget' removes its state from"
             " PlexSync's data folder.")
    return 0


# ==== forget cmd ================================================================================
# ``plexsync-recovery forget``: remove the plugin's own state from PlexSync's data folder, after asking.


def register_forget(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``forget`` subcommand."""
    parser = subparsers.add_parser(
        "forget",
        help="remove this plugin's own state from PlexSync's data folder (asks first)",
        description="Remove what this plugin keeps in PlexSync's data folder: recovery_state.db (pending windows,"
        " which outages were handled, the watch daemon's outages, the Stash hook's marker), recovery.lock, and"
        " its tables in queue/data.db (the redrive ledger). PlexSync's files and rows are left as they are. It"
        " lists them and asks first (--yes does not ask); it waits for a recovery under way. Stop 'watch' and"
        " remove the Stash plugin first, or they start again from a first start.",
        epilog=EXIT_STATUS["forget"],
    )
    parser.add_argument("--yes", action="store_true", help="do not ask")
    parser.add_argument(
        "--lock-wait",
        type=positive_seconds,
        default=CLI_LOCK_WAIT,
        metavar="SECONDS",
        help=f"most seconds to wait while a recovery runs (default {CLI_LOCK_WAIT:g})",
    )
    add_common_arguments(parser, only=REPORT_FLAGS)
    parser.set_defaults(func=run_forget)


def _describe_state(state: "PluginState") -> list[str]:
    lines = [str(path) for path in state.files]
    lines += [f"table {table} in queue/data.db ({plural(rows, 'row')})" for table, rows in state.queue_tables.items()]
    return lines


def run_forget(args: argparse.Namespace) -> int:
    """List the plugin's state, ask, and remove it; return the exit code.

    Raises:
        UsageError: The data directory is missing or not PlexSync's (exit 2).
        CliError: The answer was not yes (nothing removed), or a recovery kept the lock (exit 1).
    """
    from ..state import RecoveryLockBusy, forget, plugin_state

    settings: Settings = args.settings
    out: Output = args.out
    data_dir = settings.require_data_dir()
    found = plugin_state(data_dir)
    if found.empty:
        if out.json_mode:
            out.json({"data_dir": str(data_dir), "removed": [], "tables": {}})
        else:
            out.line(f"nothing to forget: {data_dir} holds none of this plugin's state")
        return 0
    if not args.yes:
        out.raw_stderr(f"This removes from {data_dir}:\n" + "".join(f"  {line}\n" for line in _describe_state(found)))
        out.raw_stderr("PlexSync's own files and rows stay as they are. Remove them? [y/N] ")
        try:
            answer = input()
        except EOFError:
            answer = ""
        if not sys.stdin.isatty():  # the answer was not echoed: end the question's line
            out.raw_stderr("\n")
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("nothing removed: the answer was not yes (--yes does not ask)")
    try:
        removed = forget(data_dir, lock_wait=args.lock_wait)
    except RecoveryLockBusy as error:
        raise CliError(f"nothing removed: {error}") from None
    if out.json_mode:
        out.json({"data_dir": str(data_dir), "removed": [str(path) for path in removed.files],
                  "tables": removed.queue_tables})
        return 0
    for line in _describe_state(removed):
        out.line(f"removed: {line}")
    return 0


# ==== subscribers cmd ===========================================================================
# ``plexsync-recovery subscribers``: list the subscribers installed through entry points, and whether each loads.
#
# Each one is imported (its ``setup`` is not called), so a subscriber that ``watch`` or
# ``recover`` would skip shows here with the reason.

def register_subscribers(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``subscribers`` subcommand."""
    parser = subparsers.add_parser(
        "subscribers",
        help="list the installed subscribers (entry points) and whether each loads",
        description=f"List the receivers other packages install under the '{ENTRY_POINT_GROUP}' entry points,"
        " which 'watch', 'recover' and the Stash plugin load at start (unless --no-subscribers or"
        f" {DISABLE_VARIABLE}=1). Each is imported to check it; none is set up.",
        epilog="exit status: 0 when every subscriber loads (or none is installed), 1 when one does not.",
    )
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of a table")
    parser.set_defaults(func=run_subscribers)


def run_subscribers(args: argparse.Namespace) -> int:
    """List the subscribers; 1 when one of them cannot be loaded."""
    out: Output = args.out
    found = installed_subscribers(try_import=True)
    if out.json_mode:
        out.json([asdict(subscriber) for subscriber in found])
    elif not found:
        out.line(f"No subscriber is installed (entry point group '{ENTRY_POINT_GROUP}').")
    else:
        rows = [(s.name, s.target, s.distribution, "ok" if s.error is None else f"fails: {s.error}") for s in found]
        out.table(["name", "target", "package", "status"], rows)
    return 1 if any(subscriber.error is not None for subscriber in found) else 0
