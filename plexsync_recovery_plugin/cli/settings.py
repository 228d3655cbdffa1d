"""What the command line is configured with: flags first, then the environment, then defaults.

The shared flags (``--data-dir``, ``--plex-url`` ...) are accepted both before and after the
subcommand; every one of them is added with ``default=SUPPRESS`` so that a flag given
before the subcommand is not overwritten by the subparser's default. ``resolve`` then
fills the gaps from the environment. Secrets (token, API key) are stripped of surrounding
whitespace, refused when too short to be real, and registered for masking. This module also
turns the settings into the live objects the commands use (clients, the DLQ, the queue),
failing with one clear ``CliError`` that names the bad value or file.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from ..redaction import clean_secret
from .help_text import SelectedFlags
from .secret_args import SECRET_FLAGS, early_secrets, secret_setting

__all__ = [
    "CliError",
    "DEFAULT_PLEX_URL",
    "DEFAULT_STASH_URL",
    "ENVIRONMENT",
    "SECRET_FLAGS",
    "Settings",
    "TIME_HELP",
    "UsageError",
    "add_common_arguments",
    "early_secrets",
    "non_negative_int",
    "open_dlq",
    "open_job_queue",
    "parse_time",
    "parse_window",
    "positive_int",
    "positive_seconds",
    "require_stash_key_accepted",
    "resolve",
]

DEFAULT_PLEX_URL = "http://localhost:32400"
DEFAULT_STASH_URL = "http://localhost:9999"

#: Settings attribute -> environment variable that supplies it when the flag is absent.
ENVIRONMENT = {
    "data_dir": "STASH_PLUGIN_DATA",
    "plex_url": "PLEX_URL",
    "plex_token": "PLEX_TOKEN",
    "stash_url": "STASH_URL",
    "stash_api_key": "STASH_API_KEY",
}

#: Settings attribute -> what the secret is, in messages.
_SECRET_NAMES = {"plex_token": "Plex token", "stash_api_key": "Stash API key"}

TIME_HELP = (
    "TIME is ISO 8601 (2026-02-15T19:17:49Z, 2026-02-15 19:17:49, 2026-02-15T21:17:49+02:00)"
    " or Unix seconds (1771183069); a time without a zone is UTC."
)

_UNIX_SECONDS = re.compile(r"^\d+(\.\d+)?$")


class CliError(Exception):
    """A failure the user can act on; ``main`` prints it as one line and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CliError):
    """Bad flags or flag values: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def add_common_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add the shared flags to ``parser`` (the main parser and each subcommand's); ``only`` these if given."""
    group = SelectedFlags(parser.add_argument_group("common options (flags override the environment)"), only)
    quiet = argparse.SUPPRESS
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=quiet,
        help="PlexSync data directory (env STASH_PLUGIN_DATA; else PlexSync's under ~/.stash/plugins, if there)",
    )
    group.add_argument(
        "--plex-url", metavar="URL", default=quiet, help=f"Plex server (env PLEX_URL; default {DEFAULT_PLEX_URL})"
    )
    group.add_argument("--plex-token", metavar="TOKEN", default=quiet, help="Plex token (env PLEX_TOKEN)")
    group.add_argument(
        "--stash-url", metavar="URL", default=quiet, help=f"Stash server (env STASH_URL; default {DEFAULT_STASH_URL})"
    )
    group.add_argument("--stash-api-key", metavar="KEY", default=quiet, help="Stash API key (env STASH_API_KEY)")
    group.add_argument(
        "--include-optional",
        action="store_true",
        default=quiet,
        help="also recover PlexTemporaryError and PlexNotFound entries",
    )
    group.add_argument("--json", action="store_true", default=quiet, help="print JSON instead of tables")
    group.add_argument("-v", "--verbose", action="store_true", default=quiet, help="log DEBUG details")
    group.add_argument("-q", "--quiet", action="store_true", default=quiet, help="log errors only")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one command-line run.

    Attributes:
        data_dir: The PlexSync data directory, or None when neither flag nor env gave one.
        plex_url: Plex base URL.
        plex_token: Plex token, or None.
        stash_url: Stash URL.
        stash_api_key: Stash API key, or None.
        include_optional: Also recover the optional error types.
        json: Print JSON instead of tables.
        verbose: Log at DEBUG and show tracebacks of unexpected errors.
        quiet: Log errors only.
    """

    data_dir: Path | None = None
    plex_url: str = DEFAULT_PLEX_URL
    plex_token: str | None = None
    stash_url: str = DEFAULT_STASH_URL
    stash_api_key: str | None = None
    include_optional: bool = False
    json: bool = False
    verbose: bool = False
    quiet: bool = False

    def __repr__(self) -> str:  # never show the secrets
        return f"Settings(data_dir={self.data_dir!r}, plex_url={self.plex_url!r}, stash_url={self.stash_url!r})"

    def secrets(self) -> list[str]:
        """Return the configured secrets (token, API key) that must never be printed."""
        return [value for value in (self.plex_token, self.stash_api_key) if value]

    def require_data_dir(self) -> Path:
        """Return the data directory, which must exist and hold PlexSync's ``dlq.db`` or ``queue/``.

        Raises:
            UsageError: None was configured, the path is missing or not a directory, or it
                holds neither file (a wrong path, which must not be filled with new files).
        """
        from ..sync_queue.dlq import DLQ_FILE_NAME
        from ..sync_queue.operations import QUEUE_DIR_NAME

        if self.data_dir is None:
            raise UsageError("no data directory: pass --data-dir DIR or set STASH_PLUGIN_DATA")
        if not self.data_dir.exists():
            raise UsageError(f"data directory {str(self.data_dir)!r} does not exist")
        if not self.data_dir.is_dir():
            raise UsageError(f"data directory {str(self.data_dir)!r} is not a directory")
        if not (self.data_dir / DLQ_FILE_NAME).exists() and not (self.data_dir / QUEUE_DIR_NAME).is_dir():
            raise UsageError(
                f"data directory {str(self.data_dir)!r} is not PlexSync's: it has neither {DLQ_FILE_NAME}"
                f" nor {QUEUE_DIR_NAME}/ (--data-dir / STASH_PLUGIN_DATA must name the directory PlexSync writes to)"
            )
        return self.data_dir

    def plex_connection(self, timeout: float = 5.0) -> Any:
        """Return a lazy ``PlexConnection`` (it does not talk to Plex yet).

        Raises:
            UsageError: The Plex URL is not an http(s) URL with a host and a valid port.
        """
        from ..plex.health import PlexConnection

        try:
            return PlexConnection(self.plex_url, self.plex_token, timeout=timeout)
        except ValueError as error:
            raise UsageError(str(error)) from None

    def stash_connection(self, timeout: float = 10.0) -> Any:
        """Return a lazy ``StashConnection`` (it does not talk to Stash yet).

        Raises:
            UsageError: The Stash URL is not an http(s) URL with a host and a valid port.
        """
        from ..stash.connection import StashConnection

        try:
            return StashConnection(self.stash_url, self.stash_api_key, timeout=timeout)
        except ValueError as error:
            raise UsageError(str(error)) from None


def _bounded_number(convert: Callable[[str], Any], *, minimum: float, inclusive: bool, what: str) -> Callable[[str], Any]:
    """An ``argparse`` type: ``convert`` the text and require a finite value above ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


#: ``argparse`` types for counts and durations, each naming the bad value in its error.
positive_int = _bounded_number(int, minimum=1, inclusive=True, what="a positive whole number")
non_negative_int = _bounded_number(int, minimum=0, inclusive=True, what="a whole number >= 0")
positive_seconds = _bounded_number(float, minimum=0, inclusive=False, what="a positive number of seconds")


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from parsed flags, falling back to ``environ`` (default ``os.environ``).

    Raises:
        UsageError: The token or API key is too short to be real.
    """
    env = os.environ if environ is None else environ

    def pick(name: str, default: str | None) -> str | None:
        value = getattr(args, name, None)
        if name in _SECRET_NAMES:
            value = clean_secret(value)
        if value in (None, ""):
            value = env.get(ENVIRONMENT[name]) or default
        return value

    def secret(name: str) -> str | None:
        flag = "--" + name.replace("_", "-")
        try:
            return secret_setting(pick(name, None), _SECRET_NAMES[name], f"{flag} / {ENVIRONMENT[name]}")
        except ValueError as error:
            raise UsageError(str(error)) from None

    data_dir = pick("data_dir", None) or _plexsync_default_data_dir()
    return Settings(
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        plex_url=pick("plex_url", DEFAULT_PLEX_URL) or DEFAULT_PLEX_URL,
        plex_token=secret("plex_token"),
        stash_url=pick("stash_url", DEFAULT_STASH_URL) or DEFAULT_STASH_URL,
        stash_api_key=secret("stash_api_key"),
        include_optional=bool(getattr(args, "include_optional", False)),
        json=bool(getattr(args, "json", False)),
        verbose=bool(getattr(args, "verbose", False)),
        quiet=bool(getattr(args, "quiet", False)),
    )


def _plexsync_default_data_dir() -> str | None:
    """PlexSync's own data folder under Stash's default plugins folder, when it exists."""
    from ..plexsync_paths import cli_default_data_dir

    found = cli_default_data_dir()
    return str(found) if found is not None else None


_LAST_SECOND = 253402300799.0  # 9999-12-31 23:59:59 UTC, the last time SQLite and the DLQ can hold


def parse_time(text: str, flag: str = "time") -> float:
    """Parse a window bound given on the command line into Unix seconds.

    Args:
        text: ISO 8601 (a naive time is UTC) or Unix seconds.
        flag: The flag's name, for the error message.

    Raises:
        UsageError: The text is neither, or is before 1970 or after 9999; the message names the value.
    """
    value = text.strip()
    if _UNIX_SECONDS.match(value):
        seconds = float(value)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(f"bad {flag} {text!r}: {TIME_HELP}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp()
    if seconds < 0:
        raise UsageError(f"bad {flag} {text!r}: times before 1970-01-01 are not supported")
    if not seconds <= _LAST_SECOND:
        raise UsageError(f"bad {flag} {text!r}: times after 9999-12-31 are not supported")
    return seconds


def parse_window(start: str | None, end: str | None) -> tuple[float, float] | None:
    """Parse ``--start``/``--end``; None when neither was given.

    Raises:
        UsageError: Only one was given, one is not a time, or start is after end.
    """
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise UsageError("--start and --end go together: give both")
    low, high = parse_time(start, "--start"), parse_time(end, "--end")
    if low > high:
        raise UsageError(f"--start {start!r} is after --end {end!r}")
    return low, high


def require_stash_key_accepted(stash: Any) -> None:
    """Connect to Stash now, so that a rejected API key is a configuration error (exit 2).

    A Stash that cannot be reached is left for the run to report (its entries are deferred).

    Raises:
        UsageError: Stash answered 401/403; the message names the key's flag and variable.
    """
    from ..stash.connection import StashKeyRejected, StashUnavailable

    try:
        stash.client()
    except StashKeyRejected as error:
        raise UsageError(f"{error}: check --stash-api-key / STASH_API_KEY") from None
    except StashUnavailable:
        pass


def open_dlq(data_dir: Path) -> Any:
    """``<data_dir>/dlq.db`` as a read-only ``DeadLetterQueue``.

    Opening touches nothing (the file is never created); a missing or unreadable file
    raises ``DlqUnavailable`` (a ``sqlite3.DatabaseError`` naming the file) on the first read.
    """
    from ..sync_queue.dlq import DeadLetterQueue

    return DeadLetterQueue(data_dir)


def open_job_queue(data_dir: Path) -> Any:
    """Open PlexSync's job queue in ``<data_dir>/queue``.

    Raises:
        CliError: The queue file is not a usable SQLite database, or cannot be opened.
    """
    from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, open_queue

    path = data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME
    try:
        return open_queue(data_dir)
    except sqlite3.DatabaseError as error:
        raise CliError(f"cannot use the queue {str(path)!r}: {error}") from None
