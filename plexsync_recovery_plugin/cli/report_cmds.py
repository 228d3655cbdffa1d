"""``plexsync-recovery outages`` and ``plexsync-recovery dlq``: read-only reports on a data directory.

``outages`` lists PlexSync's and the watch daemon's outages with MTTR, MTBF and availability;
``dlq`` counts the dead letters by error type and by day and lists the entries of a window.
Neither writes anything: ``dlq.db`` is opened read-only and a missing one reads as an empty DLQ.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..events import iso_time
from ..outages import iso_utc
from ..outages import OutageSummary, summarize_intervals, summarize_outages
from .help_text import EXIT_STATUS, REPORT_FLAGS, check_error_types
from .open_objects import open_dlq
from .output import Output, format_duration, format_time, truncate
from .settings import Settings, add_common_arguments
from .arg_types import TIME_HELP, non_negative_int, parse_window

__all__ = ["OutageSummary", "register", "run_dlq", "run_outages", "summarize_intervals", "summarize_outages"]

DEFAULT_ENTRY_LIMIT = 50


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    from ..worker.outage_history import HISTORY_FILE_NAME
    from ..outages import OutageSource

    settings: Settings = args.settings
    out: Output = args.out
    data_dir = settings.require_data_dir()
    outages = OutageSource(data_dir).outages()
    now = time.time()
    summary = summarize_intervals(outages, now)
    if out.json_mode:
        out.json({"outages": [o.as_dict(now) for o in outages], "summary": asdict(summary), "now": iso_utc(now)})
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
