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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .output import Output, format_time, truncate
from .plex_token import refuse_rejected_plex_token
from .settings import (
    TIME_HELP,
    CliError,
    Settings,
    UsageError,
    add_common_arguments,
    open_dlq,
    open_job_queue,
    parse_window,
)

__all__ = ["OUTCOME_LABELS", "last_closed_outage", "register", "run"]

#: How a dry run names each outcome of ``dlq_recovery.OUTCOMES``.
OUTCOME_LABELS = {
    "recovered": "would recover",
    "already_queued": "already queued",
    "scene_missing": "scene missing",
    "plex_down": "plex down",
    "stash_error": "stash error",
    "failed": "corrupt",  # a dry run writes nothing, so only an unreadable entry can fail
}

_EPILOG = f"""{textwrap.fill(TIME_HELP, 78)}

exit status: 0 when every entry was handled, 1 when some failed or the window stays
pending (Plex or Stash did not answer), 2 on bad flags or configuration."""


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
    refuse_rejected_plex_token(settings)
    if args.dry_run:
        return _dry_run(settings, out, data_dir, start, end)
    return _recover(settings, out, data_dir, start, end)


def last_closed_outage(data_dir: Path) -> tuple[float, float] | None:
    """Return ``(start, end)`` of the newest closed outage (PlexSync's history or the watch daemon's), or None."""
    from ..worker.outages import last_closed_outage as newest_closed

    return newest_closed(data_dir)


def _span(start: float | None, end: float | None) -> str:
    return f"{format_time(start)} .. {format_time(end)}"


def _nothing_to_do(out: Output, start: float | None, end: float | None, why: str, **extra: Any) -> None:
    from ..sync_queue.dlq_recovery import RecoveryResult

    if out.json_mode:
        out.json({**asdict(RecoveryResult()), "start": start, "end": end, "nothing_to_do": why, **extra})
    else:
        out.line(f"Nothing to do: {why}.")


def _recover(settings: Settings, out: Output, data_dir: Path, start: float, end: float) -> int:
    from ..plugin import RecoveryPlugin
    from ..signals import recovery_completed, recovery_failed

    plex = settings.plex_connection()
    stash = settings.stash_connection()
    dlq = open_dlq(data_dir)
    queue = open_job_queue(data_dir)
    completed: list[tuple[Any, Any, Any]] = []
    failed: list[tuple[Any, Any, Any]] = []

    def on_completed(sender: Any, *, result: Any, start: Any, end: Any, **kwargs: Any) -> None:
        completed.append((start, end, result))

    def on_failed(sender: Any, *, error: Any, start: Any, end: Any, **kwargs: Any) -> None:
        failed.append((start, end, error))

    try:
        plugin = RecoveryPlugin(dlq, queue, stash, plex, data_dir, include_optional=settings.include_optional)
        with recovery_completed.connected_to(on_completed, sender=plugin), recovery_failed.connected_to(
            on_failed, sender=plugin
        ):
            result = plugin.recover_window(start, end)
        pending = plugin.pending_windows()
    finally:
        queue.close()
        plex.close()
        stash.close()

    if result is None:
        error = failed[-1][2] if failed else "unknown error"
        raise CliError(f"recovery of {_span(start, end)} failed: {error}")
    covering = next(((s, e) for s, e, r in completed if r is result), (start, end))
    others = [(s, e, r) for s, e, r in completed if r is not result]

    if out.json_mode:
        out.json(
            {
                **asdict(result),
                "start": start,
                "end": end,
                "run_start": covering[0],
                "run_end": covering[1],
                "other_runs": [{**asdict(r), "start": s, "end": e} for s, e, r in others],
                "pending_windows": [list(w) for w in pending],
            }
        )
    else:
        if result.total_dlq_entries == 0 and not result.deferred:
            out.line(f"Nothing to do: no DLQ entry to recover in {_span(*covering)}.")
        else:
            out.line(f"Recovery of {_span(*covering)} (run {result.run_id})")
            out.table(["outcome", "entries"], _count_rows(result, dry_run=False))
            if result.recovered_scene_ids:
                out.line("re-queued scenes: " + truncate(", ".join(map(str, result.recovered_scene_ids)), 200))
        for s, e, r in others:
            out.line(f"also retried pending window {_span(s, e)}: recovered {r.recovered} of {r.total_dlq_entries}")
        for s, e in pending:
            out.line(f"still pending: {_span(s, e)}")
    return _finish(out, settings, result, dry_run=False)


def _count_rows(result: Any, *, dry_run: bool) -> list[tuple[str, int]]:
    return [
        ("DLQ entries in window", result.total_dlq_entries),
        ("would recover" if dry_run else "recovered", result.recovered),
        ("already queued", result.skipped_already_queued),
        ("scene missing", result.skipped_scene_missing),
        ("stash error (deferred)", result.skipped_stash_error),
        ("plex down (deferred)", result.skipped_plex_down),
        ("corrupt" if dry_run else "failed", result.failed),
    ]


def _finish(out: Output, settings: Settings, result: Any, *, dry_run: bool) -> int:
    """Print why the run is incomplete (one line) and return 1, or return 0 when it is complete."""
    reasons = []
    fate = "could not be judged" if dry_run else "deferred"
    if result.skipped_plex_down:
        reasons.append(
            f"Plex at {settings.plex_url} did not answer its health check ({result.skipped_plex_down} entries {fate})"
        )
    if result.skipped_stash_error:
        reasons.append(f"Stash at {settings.stash_url} could not answer ({result.skipped_stash_error} entries {fate})")
    if result.failed:
        reasons.append(f"{result.failed} entries {'are corrupt' if dry_run else 'failed'}")
    if result.deferred and not reasons:
        reasons.append("part of the window was deferred")
    if not reasons:
        return 0
    tail = "" if dry_run or not result.deferred else "; the window stays pending for a retry"
    out.error(("dry run: " if dry_run else "recovery incomplete: ") + "; ".join(reasons) + tail)
    return 1


class _QueueLocation:
    """Where the queue lives, without opening it: all a dry run reads (and nothing can write through it)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)


def _dry_run(settings: Settings, out: Output, data_dir: Path, start: float, end: float) -> int:
    from ..sync_queue.dlq import DLQ_FILE_NAME
    from ..sync_queue.dlq_entry import CorruptEntryError, decode_entry_job
    from ..sync_queue.dlq_recovery import get_error_types_for_recovery, recover_outage_jobs
    from ..sync_queue.dlq_window import DlqWindow, whole_seconds
    from ..sync_queue.operations import QUEUE_DIR_NAME

    start, end = whole_seconds(start, end)  # the window a real run (RecoveryPlugin) would select
    types = get_error_types_for_recovery(settings.include_optional)
    why = f"no {'/'.join(types)} entry in the DLQ between {_span(start, end)}"
    if not (data_dir / DLQ_FILE_NAME).exists():  # do not create PlexSync's file in a dry run
        _nothing_to_do(out, start, end, why, dry_run=True, entries=[])
        return 0
    entries = DlqWindow(open_dlq(data_dir), start, end, types)
    if len(entries) == 0:
        _nothing_to_do(out, start, end, why, dry_run=True, entries=[])
        return 0

    rows: list[dict[str, Any]] = []

    def observe(entry: dict[str, Any], outcome: str, detail: str) -> None:
        scene_id = entry.get("scene_id")
        if scene_id is None:
            try:
                scene_id = decode_entry_job(entry).scene_id
            except CorruptEntryError:
                scene_id = None
        if outcome == "recovered":
            detail = "passes every gate; not queued (dry run)"
        rows.append(
            {
                "id": entry.get("id"),
                "scene_id": scene_id,
                "error_type": entry.get("error_type"),
                "failed_at": entry.get("failed_at"),
                "outcome": OUTCOME_LABELS.get(outcome, outcome),
                "detail": detail,
            }
        )

    plex = settings.plex_connection()
    stash = settings.stash_connection()
    queue = _QueueLocation(data_dir / QUEUE_DIR_NAME)
    try:
        result = recover_outage_jobs(entries, queue, stash, plex, data_dir, dry_run=True, observer=observe)
    finally:
        plex.close()
        stash.close()

    rows.sort(key=lambda row: (str(row["failed_at"]), row["id"] or 0))  # the observer hears gate by gate
    if out.json_mode:
        out.json({**asdict(result), "start": start, "end": end, "dry_run": True, "entries": rows})
    else:
        out.line(f"Dry run for {_span(start, end)}: nothing was changed")
        out.table(
            ["DLQ id", "scene", "error type", "failed at", "outcome", "detail"],
            [
                (r["id"], r["scene_id"], r["error_type"], r["failed_at"], r["outcome"], truncate(r["detail"], 70))
                for r in rows
            ],
        )
        out.line()
        out.table(["outcome", "entries"], _count_rows(result, dry_run=True))
    return _finish(out, settings, result, dry_run=True)
