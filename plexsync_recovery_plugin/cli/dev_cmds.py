"""``plexsync-recovery bench`` and ``demo``: the development tools' commands, loaded only when asked.

Both run on loopback Plex and Stash test servers over temporary files (``dev``), which
need the ``demo`` extra; no other command imports them. ``bench`` times recovery and says
where the time went; ``demo`` runs a whole outage and its recovery and prints each step.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine import count_rows, plural
from ..formatting import Output
from .settings import (
    EXIT_STATUS,
    LOG_FLAGS,
    CliError,
    UsageError,
    add_common_arguments,
    non_negative_int,
    positive_int,
    positive_seconds,
)

if TYPE_CHECKING:
    from ..dev.demo import DemoReport

__all__ = ['register_bench', 'run_bench_command', 'register_demo', 'run_demo_command']


# ==== bench cmd =================================================================================
# ``plexsync-recovery bench``: time recovery on local test servers, and say where the time went.
#
# Thin glue over :mod:`plexsync_recovery_plugin.dev.bench` (and its ``bench_*`` siblings), which
# build the data and time the runs; ``dev.bench`` prints them. It needs no Plex, Stash
# or data directory of the user's: everything runs on loopback test servers over temporary
# files. The bench and the test servers are imported only when the command runs, so no other
# command pays for them.

#: Old acked rows in the queue unless ``--acked-history`` says otherwise (``bench_data.ACKED_HISTORY``).
_ACKED_HISTORY = 100_000


def _paths(text: str) -> list[str]:
    """``argparse`` type: a comma-separated list of distinct paths among ``bench.BENCH_PATHS``."""
    from ..dev import bench

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in bench.BENCH_PATHS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown path {unknown[0]!r} in {text!r}; choose from {','.join(bench.BENCH_PATHS)}"
        )
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct paths among {','.join(bench.BENCH_PATHS)}, got {text!r}")
    return names


def _sizes(text: str) -> list[int]:
    """``argparse`` type: a comma-separated list of positive entry counts."""
    try:
        sizes = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, got {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, got {text!r}")
    return sizes


def register_bench(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="time batched and per-entry recovery against local test servers",
        description=(
            "Build a DLQ of N in-window PlexServerDown entries (plus others outside the window or of other"
            " types; scene ids scattered over the failure order; 10% of the scenes deleted from Stash, 10%"
            " already queued; an acked history in the queue), start a loopback Stash and Plex, and time each"
            " recovery path from outage_ended to recovery_completed through the real stashapi and plexapi"
            " clients, each in its own process, with the seconds of each phase. --sizes repeats it per size"
            " for the slope of peak RSS; --window-query and --dedup time one read alone; --floor times the work no"
            " recovery can skip; --decode times safe decoding against plain pickle.loads."
        ),
        epilog=EXIT_STATUS["bench"],
    )
    parser.add_argument("--entries", type=positive_int, default=5000, metavar="N",
                        help="in-window PlexServerDown entries (default 5000)")
    parser.add_argument("--paths", type=_paths, default=None, metavar="LIST",
                        help="comma-separated paths to run, in order (default batched,per-entry; batched with --sizes)")
    parser.add_argument("--dlq-rows", type=positive_int, default=None, metavar="N",
                        help="rows in the DLQ in all, the window holding --entries of them (default twice --entries)")
    parser.add_argument("--acked-history", type=non_negative_int, default=_ACKED_HISTORY, metavar="N",
                        help=f"old acked rows in PlexSync's queue, enqueued before the outage (default {_ACKED_HISTORY})")
    parser.add_argument("--ordered-ids", action="store_true",
                        help="scene ids in failure order (scene n fails n-th) instead of scattered")
    parser.add_argument("--progress", action="store_true",
                        help="draw a progress bar from recovery_progress during each run (into memory), to time its cost")
    parser.add_argument("--live-worker", action="store_true",
                        help="run PlexSync's worker (get + ack) in another process during the batched run; print its waits")
    parser.add_argument("--sizes", type=_sizes, default=None, metavar="LIST",
                        help="comma-separated entry counts: one run per size, peak RSS per size and its slope")
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
    parser.add_argument("--floor", action="store_true",
                        help="time the floor instead: read, safely decode and write --entries with no gates (3 runs)")
    parser.add_argument("--decode", action="store_true",
                        help="time safe_loads against plain pickle.loads on --entries realistic jobs instead")
    add_common_arguments(parser, only=LOG_FLAGS)
    parser.set_defaults(func=run_bench_command, log_level=logging.INFO)  # progress lines on stderr; -q silences them


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the bench and print its report; return 0, or 1 when a path failed or results differ.

    Raises:
        UsageError: ``--work-dir`` is not a directory, ``--window-rows`` exceeds ``--rows``,
            or ``--dlq-rows`` is below the entries of a run.
    """
    from ..dev.bench import print_bench, print_decode, print_dedup, print_floor, print_sizes, print_window_query

    out = args.out
    if args.work_dir is not None and not args.work_dir.is_dir():
        raise UsageError(f"--work-dir {str(args.work_dir)!r} is not a directory")
    if args.dedup:
        from ..dev import bench as bench_dedup

        print_dedup(out, bench_dedup.run_dedup_bench(args.acked_rows, work_dir=args.work_dir))
        return 0
    if args.decode:
        from ..dev.bench import run_decode_bench

        print_decode(out, run_decode_bench(max(2, args.entries)))
        return 0
    if args.floor:
        from ..dev.bench import run_floor_bench

        print_floor(out, run_floor_bench(args.entries, acked_history=args.acked_history, work_dir=args.work_dir))
        return 0
    if args.window_query:
        if args.window_rows > args.rows:
            raise UsageError(f"--window-rows {args.window_rows} is larger than --rows {args.rows}")
        from ..dev.bench import run_window_query_bench

        print_window_query(out, run_window_query_bench(args.rows, args.window_rows, work_dir=args.work_dir))
        return 0
    largest = max(args.sizes or [args.entries])
    if args.dlq_rows is not None and args.dlq_rows < largest:
        raise UsageError(f"--dlq-rows {args.dlq_rows} is smaller than the {largest} in-window entries")
    options = {"timeout": args.timeout, "work_dir": args.work_dir, "dlq_rows": args.dlq_rows,
               "acked_history": args.acked_history, "scattered": not args.ordered_ids, "live_worker": args.live_worker,
               "progress": args.progress}
    if args.sizes:
        from ..dev.bench import run_sizes

        sizes_report = run_sizes(args.sizes, (args.paths or ["batched"])[0], **options)
        print_sizes(out, sizes_report)
        return 1 if any(run.error for run in sizes_report.sizes) else 0
    from ..dev.bench import BENCH_PATHS, run_bench

    report = run_bench(args.entries, args.paths or BENCH_PATHS, **options)
    print_bench(out, report)
    return 0 if report.same_result and not any(run.error for run in report.runs) else 1


# ==== demo cmd ==================================================================================
# ``plexsync-recovery demo``: the whole event flow on loopback, in a temporary data dir.
#
# It needs the ``demo`` extra (``graphql-core`` for the Stash test server). It prints each
# step, then the ``recovery_completed`` result and the jobs now in the queue.

def register_demo(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run a whole outage and its recovery against local Plex and Stash test servers",
        description="Start Plex and Stash test servers on 127.0.0.1, fill a DLQ as PlexSync would during an"
        " outage, take Plex down and up under the real watch loop, and show what the plugin recovered.",
        epilog=EXIT_STATUS["demo"],
    )
    parser.add_argument(
        "--interval", type=positive_seconds, default=0.2, help="seconds between Plex probes (default 0.2)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the outage was recovered with some entries recovered and some skipped."""
    out: Output = args.out
    try:
        from ..dev.demo import run_demo
    except ImportError as error:  # pragma: no cover - only without the demo extra
        raise CliError(f"the demo needs the 'demo' extra ({error}); install with: pip install '.[demo]'") from None
    narrate = (lambda text: None) if out.json_mode else (lambda text: out.line(f"- {text}"))
    try:
        report = run_demo(narrate, interval=args.interval)
    except TimeoutError as error:
        raise CliError(f"demo did not complete: {error}") from None
    result = report.result
    if out.json_mode:
        out.json(
            {
                "outage": report.outage,
                "result": result.as_dict() if result else None,
                "queue": [{"scene_id": s, "update_type": u, "origin": o} for s, u, o in report.queue],
                "dlq_entries_before_after": list(report.dlq_entries),
                "signals": [name for name, _ in report.signals],
                "seconds": round(report.seconds, 2),
            }
        )
    else:
        _show(out, report)
    if result is None or result.recovered == 0 or result.deferred:
        return 1
    return 0


def _show(out: Output, report: "DemoReport") -> None:
    result = report.result
    assert result is not None
    outage = report.outage
    out.line()
    out.line(f"Signals, in order: {' -> '.join(name for name, _ in report.signals)}")
    out.line(
        f"Outage: {outage.get('started_at', '-')} .. {outage.get('ended_at') or '-'}"
        f" ({outage.get('duration', 0):.1f} s, {plural(outage.get('jobs_affected', 0), 'DLQ entry')} in the window)"
    )
    out.line()
    out.table(("recovery_completed", "count"), count_rows(result), title="RecoveryResult")
    out.line(f"recovered scene ids: {result.recovered_scene_ids}")
    out.line()
    out.table(("scene", "update", "origin"), report.queue, title="Jobs now pending in the queue")
    before, after = report.dlq_entries
    out.line()
    out.line(
        f"DLQ rows before recovery: {before}, after: {after} (recovery never deletes a row);"
        " permanent (PlexAuthError) and optional (PlexTemporaryError) types were left alone."
    )
    out.line(f"Done in {report.seconds:.1f} s.")
