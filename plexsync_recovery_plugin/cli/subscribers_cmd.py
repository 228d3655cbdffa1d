"""``plexsync-recovery subscribers``: list the subscribers installed through entry points, and whether each loads.

Each one is imported (its ``setup`` is not called), so a subscriber that ``watch`` or
``recover`` would skip shows here with the reason.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from ..subscribers import DISABLE_VARIABLE, ENTRY_POINT_GROUP, installed_subscribers
from .output import Output

__all__ = ["register", "run"]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
