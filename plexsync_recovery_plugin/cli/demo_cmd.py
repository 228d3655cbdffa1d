"""``plexsync-recovery demo``: the whole event flow on loopback, in a temporary data dir.

It needs the ``demo`` extra (``graphql-core`` for the Stash test server). It prints each
step, then the ``recovery_completed`` result and the jobs now in the queue.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .errors import CliError
from .help_text import EXIT_STATUS
from .arg_types import positive_seconds
from ..engine import plural
from .output import Output, count_rows

if TYPE_CHECKING:
    from ..dev.demo import DemoReport

__all__ = ["register", "run"]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
