"""``plexsync-recovery bench``: time batched against per-entry recovery on local test servers.

Thin glue over :mod:`plexsync_recovery_plugin.bench`, which builds the data and times the
runs. It needs no Plex, Stash or data directory of the user's: everything runs on
loopback test servers over temporary files. The bench and the test servers are imported
only when the command runs, so no other command pays for them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .help_text import EXIT_STATUS, LOG_FLAGS
from .number_args import non_negative_int, positive_int, positive_seconds
from .settings import add_common_arguments

if TYPE_CHECKING:
    from ..bench import BenchReport
    from ..bench_window import WindowQueryReport

__all__ = ["register", "run"]


def _paths(text: str) -> list[str]:
    """``argparse`` type: a comma-separated list of distinct paths among ``bench.BENCH_PATHS``."""
    from .. import bench

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in bench.BENCH_PATHS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown path {unknown[0]!r} in {text!r}; choose from {','.join(bench.BENCH_PATHS)}"
        )
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct paths among {','.join(bench.BENCH_PATHS)}, got {text!r}")
    return names


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="time batched and per-entry recovery against local test servers",
        description=(
            "Build a DLQ of N in-window PlexServerDown entries (plus N outside the window or of other"
            " types; 10% of the scenes deleted from Stash, 10% already queued), start a loopback Stash"
            " and Plex, and time each recovery path from outage_ended to recovery_completed through the"
            " real stashapi and plexapi clients, each in its own process. --window-query instead times"
            " the DLQ window query alone over a large DLQ."
        ),
        epilog=EXIT_STATUS["bench"],
    )
    parser.add_argument("--entries", type=positive_int, default=5000, metavar="N",
                        help="in-window PlexServerDown entries (default 5000)")
    parser.add_argument("--paths", type=_paths, default=None, metavar="LIST",
                        help="comma-separated paths to run, in order (default batched,per-entry)")
    parser.add_argument("--timeout", type=positive_seconds, default=None, metavar="SECONDS",
                        help="give up on a path after this long (default: no limit)")
    parser.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                        help="where to build the temporary data (default: the system temp dir)")
    parser.add_argument("--window-query", action="store_true",
                        help="time the DLQ window query alone instead (see --rows, --window-rows)")
    parser.add_argument("--rows", type=positive_int, default=1_000_000, metavar="N",
                        help="with --window-query: rows in the DLQ (default 1000000)")
    parser.add_argument("--window-rows", type=non_negative_int, default=10_000, metavar="N",
                        help="with --window-query: rows inside the window (default 10000)")
    parser.add_argument("--dedup", action="store_true",
                        help="time the 'already covered' read over a long-lived queue instead (see --acked-rows)")
    parser.add_argument("--acked-rows", type=non_negative_int, default=1_000_000, metavar="N",
                        help="with --dedup: old acked rows in the queue (default 1000000)")
    add_common_arguments(parser, only=LOG_FLAGS)
    parser.set_defaults(func=run, log_level=logging.INFO)  # progress lines on stderr; -q silences them


def run(args: argparse.Namespace) -> int:
    """Run the bench and print its report; return 0, or 1 when a path failed or results differ.

    Raises:
        UsageError: ``--work-dir`` is not a directory, or ``--window-rows`` exceeds ``--rows``.
    """
    out = args.out
    if args.work_dir is not None and not args.work_dir.is_dir():
        raise UsageError(f"--work-dir {str(args.work_dir)!r} is not a directory")
    if args.dedup:
        from .. import bench_dedup

        _print_dedup(out, bench_dedup.run_dedup_bench(args.acked_rows, work_dir=args.work_dir))
        return 0
    if args.window_query:
        if args.window_rows > args.rows:
            raise UsageError(f"--window-rows {args.window_rows} is larger than --rows {args.rows}")
        from ..bench_window import run_window_query_bench

        window_report = run_window_query_bench(args.rows, args.window_rows, work_dir=args.work_dir)
        _print_window_query(out, window_report)
        return 0
    from ..bench import BENCH_PATHS, run_bench

    report = run_bench(args.entries, args.paths or BENCH_PATHS, timeout=args.timeout, work_dir=args.work_dir)
    _print_bench(out, report)
    return 0 if report.same_result and not any(run.error for run in report.runs) else 1


def _print_dedup(out: Any, report: Any) -> None:
    if out.json_mode:
        out.json(report.as_dict())
        return
    out.line(f"queue: {report.acked_rows} old acked rows + live and recent ones, {report.file_mb:.0f} MB"
             f" (built in {report.build_seconds:.1f} s)")
    out.line("read (live jobs + acked since the window): " + ", ".join(f"{s:.3f} s" for s in report.read_seconds))
    out.line(f"found {report.live_scenes} scenes with a live job, {report.recent_acked_scenes} acked since the window")


def _print_bench(out: Any, report: "BenchReport") -> None:
    if out.json_mode:
        out.json(report.as_dict())
        return
    rows = [
        [run.path, run.entries, round(run.seconds, 3), round(run.entries_per_second), round(run.peak_rss_mb, 1),
         run.error or "ok"]
        for run in report.runs
    ]
    out.table(
        ["path", "entries", "seconds", "entries/s", "peak RSS MB", "status"],
        rows,
        title=(
            f"recovery of {report.entries} in-window entries ({report.noise} others in the DLQ,"
            f" {report.deleted} scenes deleted from Stash, {report.queued} already queued)"
        ),
    )
    if report.ratio:
        out.line(f"per-entry/batched: {report.ratio:.1f}x")
    out.line("same result on every path: " + ("yes" if report.same_result else "NO"))
    for run in report.runs:
        if run.stash_requests:
            asked = ", ".join(f"{name} x{count}" for name, count in sorted(run.stash_requests.items()))
            out.line(f"{run.path}: Stash resolved {asked}")


def _print_window_query(out: Any, report: "WindowQueryReport") -> None:
    if out.json_mode:
        out.json(report.as_dict())
        return

    def runs(timings: list[float]) -> str:
        return ", ".join(f"{seconds:.4f}" for seconds in timings)

    out.table(
        ["DLQ", "rows", "window rows", "returned", "read s (each run)"],
        [
            ["PlexSync's form only", report.rows, report.window_rows, report.returned, runs(report.query_seconds)],
            ["  same, seeking PlexSync's form alone", report.rows, report.window_rows, report.returned,
             runs(report.plexsync_form_only_seconds)],
            [f"{report.mixed_share:.0%} in T/Z/+00:00/Unix forms", report.rows, report.window_rows,
             report.mixed_returned, runs(report.mixed_query_seconds)],
        ],
        title=f"DLQ window query on PlexSync's idx_failed_at (len() and every page; DLQs built in "
        f"{report.build_seconds:.1f} s)",
    )
    for statement, details in report.plan.items():
        out.line(f"plan ({statement}): {'; '.join(details)}")
