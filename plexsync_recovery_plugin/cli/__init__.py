"""The ``plexsync-recovery`` command line: parse, configure logging, dispatch, and never show a traceback.

Each subcommand has a ``register_<name>(subparsers)`` (in ``commands``, or ``dev_cmds`` for
``bench`` and ``demo``), which adds its subparser and ``set_defaults(func=run_<name>)``, a
function ``(args) -> int``. Before calling
``func``, ``main`` attaches the resolved ``Settings`` as ``args.settings`` and the
``Output`` writer as ``args.out``. A command may also ``set_defaults(log_level=...,
log_long_format=True)`` to change how much it logs by default.

Every failure ends as one line on stderr (``plexsync-recovery: error: ...``, or
``{"error": "..."}`` with ``--json``) with a
non-zero exit code: 2 for usage and configuration errors (a missing extra too), 1 otherwise,
130 on Ctrl-C.
With ``-v`` an unexpected error also shows its traceback. Secrets are masked everywhere,
by the package's one redactor (``redaction.REDACTOR``), which learns them from the
command line before parsing and from the resolved settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import traceback
from typing import Any, Callable, NoReturn, Sequence

from .. import __version__
from ..errors import CLI, ConfigurationError, explain, set_door
from ..formatting import PROG, Output
from ..redaction import REDACTOR
from . import commands, dev_cmds
from .console import LoggingHandle, configure_logging
from .settings import (
    EXIT_STATUS,
    CliError,
    Settings,
    UsageError,
    add_common_arguments,
    early_secrets,
    missing_extra,
    resolve,
)

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ``UsageError`` instead of printing usage and exiting.

    Abbreviated long flags are refused: ``--plex-tok SECRET`` must not be half-recognized.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Raise the parse error for ``main`` to print as one line."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """Return the full parser with every subcommand registered."""
    parser = _Parser(
        prog=PROG,
        description="Re-queue PlexSync's dead-lettered jobs after Plex outages, and report on them.",
        epilog=EXIT_STATUS["main"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common_arguments(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registers: tuple[Callable[[Any], None], ...] = (
        commands.register_recover, commands.register_reports, commands.register_watch, dev_cmds.register_demo,
        dev_cmds.register_bench, commands.register_stash_plugin, commands.register_forget,
        commands.register_subscribers,
    )
    for register in registers:  # in the order --help lists them
        register(subparsers)
    return parser


def _log_level(args: argparse.Namespace, settings: Settings) -> int:
    if settings.verbose:
        return logging.DEBUG
    if settings.quiet:
        return logging.ERROR
    return int(getattr(args, "log_level", logging.WARNING))


def _describe_os_error(error: OSError) -> str:
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename is not None:
        return f"{reason}: {str(error.filename)!r}"
    return reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it).

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    set_door(CLI)  # the library's own lines name the flags and variables to fix
    redactor = REDACTOR
    redactor.add(*early_secrets(arguments, os.environ))  # quietly ignores values too short to mask
    out = Output(redactor, json_mode="--json" in arguments)  # so that even a parse error is JSON
    settings: Settings | None = None
    handle: LoggingHandle | None = None
    try:
        args = build_parser().parse_args(arguments)
        settings = resolve(args)  # registers the secrets
        out.json_mode = settings.json
        handle = configure_logging(
            _log_level(args, settings),
            redactor,
            long_format=settings.verbose or bool(getattr(args, "log_long_format", False)),
        )
        args.settings = settings
        args.out = out
        return int(args.func(args) or 0)
    except SystemExit as exit_request:  # --help, --version, or a command that exits on its own
        code = exit_request.code
        if isinstance(code, str):
            out.error(code)
        return code if isinstance(code, int) else (0 if code is None else 1)
    except CliError as error:
        if out.json_mode or not error.logged:
            out.error(str(error))
        return error.exit_code
    except ConfigurationError as error:  # a refused token or key: the one model, the CLI's advice
        out.error(explain(error, CLI))
        return 2
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except BrokenPipeError:  # the reader (| head) went away: nothing more to say
        _silence_stdout()
        return 1
    except sqlite3.DatabaseError as error:
        where = f" in {str(settings.data_dir)!r}" if settings and settings.data_dir else ""
        out.error(f"SQLite error{where}: {error}")
        return 1
    except OSError as error:
        out.error(_describe_os_error(error))
        return 1
    except Exception as error:
        return _unexpected(out, settings, error)
    finally:
        if handle is not None:
            handle.close()


def _unexpected(out: Output, settings: Settings | None, error: Exception) -> int:
    """One line for an error nobody expected (a missing extra is a usage error); the traceback only with -v."""
    extra = missing_extra(error)  # graphql-core for demo/bench, apprise for --notify
    if extra is not None:
        out.error(extra)
        return 2
    verbose = settings is not None and settings.verbose
    out.error(f"unexpected {type(error).__name__}: {error}" + ("" if verbose else " (-v shows the traceback)"))
    if verbose:
        out.raw_stderr(traceback.format_exc())
    return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
