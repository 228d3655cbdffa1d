"""``plexsync-recovery stash-plugin install``: put the Stash plugin into Stash's plugins folder."""

from __future__ import annotations

import argparse

from .errors import CliError
from .help_text import EXIT_STATUS
from .output import Output

__all__ = ["register", "run"]

_ACTIONS = {"create": "wrote", "update": "updated", "unchanged": "unchanged", "foreign": "NOT ours, left alone"}


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``stash-plugin`` subcommand."""
    parser = subparsers.add_parser(
        "stash-plugin",
        help="install the Stash plugin (recovery inside Stash, with PlexSync's settings)",
        description="Manage the Stash plugin that runs recovery inside Stash.",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    actions = parser.add_subparsers(dest="stash_plugin_action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        help="write the plugin's manifest and launcher into Stash's plugins folder",
        description="Write <plugins-dir>/PlexSyncRecovery/ (manifest and launcher). Running it again changes"
        " nothing or updates the files an earlier install wrote; it never overwrites a file it did not write."
        " Then reload plugins in Stash (Settings > Plugins).",
        epilog=EXIT_STATUS["stash-plugin"],
    )
    install.add_argument("--plugins-dir", required=True, metavar="DIR", help="Stash's plugins folder")
    install.add_argument("--print", action="store_true", help="show the files it would write; write nothing")
    install.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Install (or, with ``--print``, show) the plugin; return the exit code."""
    from ..stash_plugin.install import ForeignFileError, install, plan_install

    out: Output = args.out
    if args.print:
        for item in plan_install(args.plugins_dir):
            out.line(f"# {item.path} ({'would be left alone: not ours' if item.action == 'foreign' else item.action})")
            out.line(item.content.rstrip("\n"))
            out.line()
        return 0
    try:
        done = install(args.plugins_dir)
    except (ForeignFileError, FileNotFoundError) as error:
        raise CliError(str(error)) from None
    for item in done:
        out.line(f"{_ACTIONS[item.action]}: {item.path}")
    out.line("Reload plugins in Stash (Settings > Plugins) to see PlexSync Recovery's tasks.")
    return 0
