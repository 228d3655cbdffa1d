"""``plexsync-recovery outages`` and ``plexsync-recovery dlq``: read-only reports on a data directory.

``outages`` lists the outage history with MTTR, MTBF and availability; ``dlq`` counts the
dead letters by error type and by day and lists the entries of a window. Neither writes
anything: ``dlq.db`` is opened read-only and a missing one reads as an empty DLQ.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .output import Output, format_duration, format_time, truncate
from .settings import TIME_HELP, Settings, add_common_arguments, non_negative_int, open_dlq, parse_window

__all__ = ["OutageSummary", "register", "run_dlq", "run_outages", "summarize_outages"]

DEFAULT_ENTRY_LIMIT = 50


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``outages`` and ``dlq`` subcommands."""
    outages = subparsers.add_parser(
        "outages",
        help="list recorded Plex outages with MTTR, MTBF and availability",
        description="List <data-dir>/outage_history.json (newest 30 outages) and summarize it: MTTR is the mean "
        "duration of closed outages, MTBF the mean time between consecutive outage starts, availability "
        "1 - downtime/span from the first recorded start to now.",
    )
    add_common_arguments(outages)
    outages.set_defaults(func=run_outages)

    dlq = subparsers.add_parser(
        "dlq",
        help="count dead letters by error type and day; list a window's entries",
        description="Count the DLQ entries by error type and by day (UTC); with --start/--end also list the "
        "entries that failed inside that window.",
        epilog=TIME_HELP,
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
    add_common_arguments(dlq)
    dlq.set_defaults(func=run_dlq)


# -- outages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutageSummary:
    """Figures over an outage history (seconds; None where they cannot be computed).

    Attributes:
        count: Outages recorded.
        ongoing: Whether the newest one is still open.
        mttr_seconds: Mean duration of the closed outages.
        mtbf_seconds: Mean time between the starts of consecutive outages (needs 2).
        span_seconds: From the first recorded start to ``now``.
        downtime_seconds: Total time inside outages up to ``now``.
        availability_percent: ``100 * (1 - downtime / span)``.
    """

    count: int
    ongoing: bool
    mttr_seconds: float | None
    mtbf_seconds: float | None
    span_seconds: float | None
    downtime_seconds: float
    availability_percent: float | None


def _duration(record: dict[str, Any]) -> float | None:
    if record.get("ended_at") is None:
        return None
    duration = record.get("duration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return max(0.0, float(duration))
    return max(0.0, float(record["ended_at"]) - float(record["started_at"]))


def summarize_outages(records: Sequence[dict[str, Any]], now: float) -> OutageSummary:
    """Compute MTTR, MTBF and availability of ``records`` as seen at ``now`` (Unix seconds)."""
    if not records:
        return OutageSummary(0, False, None, None, None, 0.0, None)
    starts = sorted(float(record["started_at"]) for record in records)
    closed = [d for d in (_duration(record) for record in records) if d is not None]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    downtime = 0.0
    for record in records:
        started = float(record["started_at"])
        duration = _duration(record)
        downtime += duration if duration is not None else max(0.0, now - started)
    span = now - starts[0]
    availability = None
    if span > 0:
        availability = 100.0 * (1.0 - min(downtime, span) / span)
    return OutageSummary(
        count=len(records),
        ongoing=records[-1].get("ended_at") is None,
        mttr_seconds=sum(closed) / len(closed) if closed else None,
        mtbf_seconds=sum(gaps) / len(gaps) if gaps else None,
        span_seconds=span if span > 0 else None,
        downtime_seconds=downtime,
        availability_percent=availability,
    )


def run_outages(args: argparse.Namespace) -> int:
    """Print the outage history and its summary; return the exit code."""
    from ..worker.outage_history import OutageHistory

    settings: Settings = args.settings
    out: Output = args.out
    history = OutageHistory(settings.require_data_dir())
    records = history.get_history()
    now = time.time()
    summary = summarize_outages(records, now)
    if out.json_mode:
        out.json({"outages": records, "summary": asdict(summary), "now": now})
        return 0
    if not records:
        out.line(f"No outage recorded in {history.path}.")
        return 0
    rows = []
    for record in records:
        duration = _duration(record)
        ongoing = record.get("ended_at") is None
        rows.append(
            (
                format_time(record["started_at"]),
                "ongoing" if ongoing else format_time(record["ended_at"]),
                format_duration(max(0.0, now - float(record["started_at"])) if ongoing else duration)
                + (" so far" if ongoing else ""),
                record.get("jobs_affected"),
            )
        )
    out.table(["start", "end", "duration", "jobs affected"], rows, align="lllr")
    out.line()
    availability = "n/a" if summary.availability_percent is None else f"{summary.availability_percent:.3f}%"
    out.table(
        ["summary", "value"],
        [
            ("outages", f"{summary.count}{' (one ongoing)' if summary.ongoing else ''}"),
            ("MTTR (mean outage duration)", format_duration(summary.mttr_seconds)),
            ("MTBF (mean time between starts)", format_duration(summary.mtbf_seconds)),
            ("downtime", format_duration(summary.downtime_seconds)),
            (f"availability since {format_time(float(min(r['started_at'] for r in records)))}", availability),
        ],
    )
    return 0


# -- dlq -------------------------------------------------------------------------------------


def run_dlq(args: argparse.Namespace) -> int:
    """Print the DLQ counts (and a window's entries); return the exit code."""
    from ..sync_queue.dlq import DLQ_FILE_NAME

    settings: Settings = args.settings
    out: Output = args.out
    data_dir: Path = settings.require_data_dir()
    window = parse_window(args.start, args.end)
    wanted = list(dict.fromkeys(args.error_type or []))
    path = data_dir / DLQ_FILE_NAME

    by_type: dict[str, int] = {}
    by_day: list[tuple[str | None, int]] = []
    entries: list[dict[str, Any]] = []
    in_window = 0
    if path.exists():  # a missing DLQ is an empty one; a report never creates it
        dlq = open_dlq(data_dir)
        by_type = dlq.get_error_summary()
        by_day = dlq.counts_by_day(wanted)
        if window is not None:
            types = wanted or [name for name in by_type if name is not None]
            selection = dlq.window(window[0], window[1], types)
            in_window = len(selection)
            for entry in selection:
                if args.limit and len(entries) >= args.limit:
                    break
                entries.append({key: entry[key] for key in ("id", "scene_id", "error_type", "failed_at", "error_message")})

    if out.json_mode:
        data: dict[str, Any] = {
            "dlq": str(path),
            "total": sum(by_type.values()),
            "by_error_type": by_type,
            "by_day": [{"day": day, "count": count} for day, count in by_day],
            "error_types": wanted or None,
        }
        if window is not None:
            data.update(start=window[0], end=window[1], entries_in_window=in_window, entries=entries)
        out.json(data)
        return 0

    if not path.exists():
        out.line(f"No DLQ at {path}: nothing has been dead-lettered yet.")
        return 0
    out.table(["error type", "entries"], [*by_type.items(), ("total", sum(by_type.values()))],
              title="DLQ entries by error type")
    out.line()
    scope = f" ({', '.join(wanted)})" if wanted else ""
    out.table(["day (UTC)", "entries"], by_day or [("-", 0)], title=f"DLQ entries by day{scope}", align="lr")
    if window is not None:
        out.line()
        out.line(f"Entries failed between {format_time(window[0])} and {format_time(window[1])}{scope}: {in_window}")
        if entries:
            out.table(
                ["id", "scene", "error type", "failed at", "message"],
                [(e["id"], e["scene_id"], e["error_type"], e["failed_at"], truncate(e["error_message"])) for e in entries],
            )
        if in_window > len(entries):
            out.line(f"... and {in_window - len(entries)} more (--limit 0 lists all)")
    return 0
