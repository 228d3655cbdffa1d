"""``plexsync-recovery recover``: recover one outage window now, or show what recovering it would do.

A real run goes through ``RecoveryPlugin.recover_window`` so that everything the daemon
guarantees holds here too: the window is saved as pending first (and stays pending if
Plex or Stash cannot answer), overlapping pending windows are merged, and the recovery
lock keeps it from running beside another recovery. ``--dry-run`` asks the same three
gates but writes nothing (no queue row, no ledger row, no pending window).
"""

from __future__ import annotations

import argparse
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import ConfigurationError
from ..events import iso_time, window_fields
from ..state import CLI_LOCK_WAIT
from ..engine import OUTCOME_LABELS, outcome_word, plural
from .errors import CliError, UsageError
from .listeners import add_listener_arguments, listeners
from .open_objects import open_dlq, refuse_rejected_plex_token, require_stash_key_accepted
from .output import Output, count_rows, format_time, truncate
from .settings import Settings, add_common_arguments
from .arg_types import TIME_HELP, parse_window, positive_seconds

if TYPE_CHECKING:
    from ..plugin import Preview, RecoveryPlugin, Run
    from ..engine import RecoveryResult

__all__ = ["OUTCOME_LABELS", "last_closed_outage", "register", "run"]

_EPILOG = f"""{textwrap.fill(TIME_HELP, 78)}

exit status: 0 when every entry was handled, 1 when some failed or the window stays
pending (Plex or Stash did not answer), 2 on bad flags or configuration (Stash
rejecting the API key included)."""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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


def _span(start: float | None, end: float | None) -> str:
    return f"{format_time(start)} .. {format_time(end)}"


def _asked(received: tuple[float, float], start: float | None, end: float | None) -> str:
    """The window asked for, and the one searched when it reads otherwise (whole seconds, merged)."""
    asked, searched = _span(*received), _span(start, end)
    return asked if asked == searched else f"{asked} (searched {searched})"


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
        raise CliError(f"recovery of {_span(start, end)} failed: {covering.error}", logged=True)  # the plugin said it
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
        out.line(f"Nothing to do: no DLQ entry to recover in {_asked((start, end), covering.start, covering.end)}.")
    else:
        out.line(f"Recovery of {_asked((start, end), covering.start, covering.end)} (run {result.run_id})")
        out.table(["outcome", "entries"], count_rows(result))
        if result.recovered_scene_ids:
            out.line("re-queued scenes: " + truncate(", ".join(map(str, result.recovered_scene_ids)), 200))
    for run in others:
        out.line(f"also retried pending window {_span(run.start, run.end)}: {run.result}")
    for window in pending:
        out.line(f"still pending: {_span(*window)}")
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
    from ..sync_queue.dlq import DLQ_FILE_NAME
    from ..sync_queue.dlq import whole_seconds
    from ..engine import Selection

    received = (start, end)
    start, end = whole_seconds(start, end)  # the window a real run selects
    selection = Selection(settings.include_optional, settings.outage_casualties)
    why = f"no {selection.describe()} entry in the DLQ between {_span(start, end)}"
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
    out.line(f"Dry run for {_asked(received, preview.start, preview.end)}: nothing was changed")
    out.table(
        ["DLQ id", "scene", "error type", "failed at", "outcome", "detail"],
        [(r["id"], r["scene_id"], r["error_type"], r["failed_at"], r["outcome"], truncate(r["detail"], 70)) for r in rows],
    )
    out.line()
    out.table(["outcome", "entries"], count_rows(preview.result))
