"""What the command line is configured with, checked: flags, environment, defaults, and the objects they open.

The shared flags (``--data-dir``, ``--plex-url`` ...) are accepted before and after the
subcommand (each added with ``default=SUPPRESS``); ``resolve`` fills the gaps from the
environment. Every value is checked as it is taken in, and a bad one is a ``UsageError`` or
``CliError`` naming it, printed by ``main`` as one line with its exit code. Secrets are found
before parsing (so even a parse error is masked), stripped, refused when too short to be
real, and registered for masking. ``open_dlq`` and friends open PlexSync's files and check
the Plex token and Stash key, each failure one clear error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from ..errors import CLI, PLEX_TOKEN, hint
from ..http_url import DEFAULT_REQUEST_DEADLINE
from ..plex.health import PLEX_TOKEN_REJECTED, probe_plex, token_rejection
from ..redaction import MIN_SECRET_LENGTH, clean_secret, register_secret, register_url

__all__ = ['CliError', 'UsageError', 'DISTRIBUTION', 'EXTRAS', 'missing_extra', 'TIME_HELP', 'non_negative_days', 'non_negative_int', 'parse_time', 'parse_window', 'positive_int', 'positive_seconds', 'listen_address', 'SECRET_FLAGS', 'early_secrets', 'secret_setting', 'EXIT_STATUS', 'LOG_FLAGS', 'REPORT_FLAGS', 'SelectedFlags', 'check_error_types', 'DEFAULT_PLEX_URL', 'DEFAULT_STASH_URL', 'ENVIRONMENT', 'Settings', 'add_common_arguments', 'resolve', 'TOKEN_HINT', 'open_dlq', 'open_job_queue', 'refuse_rejected_plex_token', 'require_stash_key_accepted', 'HTTP_TOKEN_VARIABLE', 'HTTP_VARIABLE', 'HttpSettings', 'add_http_arguments', 'http_settings', 'open_status_server', 'require_web_extra']


# ==== errors ====================================================================================
# The command line's own errors: what ``main`` prints as one line, with the exit code to use.
#
# Kept apart so that every command module, the settings and the argument types can raise
# them without importing each other.

class CliError(Exception):
    """A failure the user can act on; ``main`` prints it as one line and exits with ``exit_code``.

    ``logged`` says the library already wrote this failure as an error line (a failed run), so
    the text output does not say it twice; ``--json`` still gets its one JSON error object.
    """

    def __init__(self, message: str, exit_code: int = 1, *, logged: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.logged = logged


class UsageError(CliError):
    """Bad flags or flag values: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


# ==== extras ====================================================================================
# Which optional extra a missing module belongs to, so the error names what to install.
#
# ``demo`` and ``bench`` run the Stash test server, which needs ``graphql-core`` (the ``demo``
# extra); ``--notify`` needs Apprise (the ``notify`` extra); ``watch --http`` needs
# ``prometheus_client`` (the ``web`` extra). Without them a command would otherwise stop
# with a bare ``No module named 'graphql'``.

DISTRIBUTION = "plexsync-recovery-plugin"

#: Top-level module -> (extra, the package that provides it).
EXTRAS = {
    "graphql": ("demo", "graphql-core"),
    "apprise": ("notify", "apprise"),
    "prometheus_client": ("web", "prometheus-client"),
}

_NO_MODULE = re.compile(r"No module named '([^']+)'")


def missing_extra(error: BaseException) -> str | None:
    """The one-line message for an ``ImportError`` of an extra's module, or None when it is not one."""
    if not isinstance(error, ImportError):
        return None
    name = error.name
    if not name:
        match = _NO_MODULE.search(str(error))
        name = match.group(1) if match else None
    extra = EXTRAS.get((name or "").split(".")[0])
    if extra is None:
        return None
    return (
        f"this command needs the '{extra[0]}' extra ({extra[1]} is not installed):"
        f" pip install '{DISTRIBUTION}[{extra[0]}]'"
    )


# ==== arg types =================================================================================
# The values the command line takes, checked as they are parsed, each error naming the bad value.
#
# Counts and durations: a count of ``0`` where one is needed, ``nan`` seconds or ``inf``
# seconds are refused at parse time, so the commands never see them.
#
# Times: window bounds given on the command line: ISO 8601 or Unix seconds, turned into Unix seconds.
#
# A time without a zone is UTC (PlexSync's ``dlq.db`` stores UTC). Times before 1970 or after
# 9999 are refused with the flag and the value named, so a typo never selects nothing quietly.

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


positive_int = _bounded_number(int, minimum=1, inclusive=True, what="a positive whole number")
non_negative_int = _bounded_number(int, minimum=0, inclusive=True, what="a whole number >= 0")
positive_seconds = _bounded_number(float, minimum=0, inclusive=False, what="a positive number of seconds")
non_negative_days = _bounded_number(float, minimum=0, inclusive=True, what="a number of days >= 0")

#: Where a server listens when only a port is given: this machine alone.
DEFAULT_LISTEN_HOST = "127.0.0.1"


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` as ``(host, port)``; the host defaults to 127.0.0.1.

    Raises:
        argparse.ArgumentTypeError: None of those forms, or a port outside 0..65535 (0: any free port).
    """
    value = text.strip()
    host, port = DEFAULT_LISTEN_HOST, value
    if value.startswith("["):
        inner, bracket, rest = value[1:].partition("]")
        if not (bracket and inner and rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r} (an IPv6 host is written [::1]:8080)")
        host, port = inner, rest[1:]
    elif ":" in value:
        given, _, port = value.rpartition(":")
        if ":" in given:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r} (an IPv6 host is written [::1]:8080)")
        host = given or DEFAULT_LISTEN_HOST
    if not port.isdigit() or int(port) > 65535 or any(char.isspace() for char in host):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host, int(port)


TIME_HELP = (
    "TIME is ISO 8601 (2026-02-15T19:17:49Z, 2026-02-15 19:17:49, 2026-02-15T21:17:49+02:00)"
    " or Unix seconds (1771183069); a time without a zone is UTC."
)

_UNIX_SECONDS = re.compile(r"^\d+(\.\d+)?$")
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


# ==== secret args ===============================================================================
# Which command-line values are secrets, and how they are taken in.
#
# Secrets are found twice: before parsing (``early_secrets``: the values of the secret flags,
# and of any misspelt flag that still looks like one, and the secret variables), so that even
# a parse error that echoes the command line is masked; and once resolved
# (``secret_setting``), when each is stripped, refused if too short to be real, and registered
# with the package's redactor.

#: The flags whose values are secrets (scrubbed from every output, even before parsing).
SECRET_FLAGS = ("--plex-token", "--stash-api-key", "--http-token")
_SECRET_VARIABLES = ("PLEX_TOKEN", "STASH_API_KEY", "PLEXSYNC_RECOVERY_HTTP_TOKEN")
_SECRET_HINTS = ("tok", "key", "api", "secret", "pass", "notif")  # notif: --notify URLs hold secrets


def _looks_secret(flag: str) -> bool:
    # The real secret flags, and any misspelling of them that still looks like one.
    name = flag.lower()
    return flag in SECRET_FLAGS or (name.startswith("-") and any(part in name for part in _SECRET_HINTS))


def _flag_secrets(argv: list[str]) -> list[str]:
    found = []
    for index, token in enumerate(argv):
        flag, equals, value = token.partition("=")
        if not _looks_secret(flag):
            continue
        if equals:
            found.append(value)
        elif index + 1 < len(argv):
            found.append(argv[index + 1])
    return found


def early_secrets(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """Secrets visible before parsing (secret flags' values, secret variables), stripped."""
    values = _flag_secrets(argv) + [environ.get(name, "") for name in _SECRET_VARIABLES]
    return [clean for clean in map(clean_secret, values) if clean]


def secret_setting(value: str | None, what: str, given_by: str) -> str | None:
    """Strip a secret, refuse one too short to be real, and register it for masking.

    Args:
        value: As given (a flag's or a variable's value), or None.
        what: What it is, for the message (``"Stash API key"``).
        given_by: Where it comes from, for the message (``"--stash-api-key / STASH_API_KEY"``).

    Returns:
        The stripped secret, or None when none (or only whitespace) was given.

    Raises:
        ValueError: It is shorter than ``MIN_SECRET_LENGTH`` (the message does not show it).
    """
    secret = clean_secret(value)
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"the {what} ({given_by}) is {len(secret)} characters long: too short to be a real one"
            f" (at least {MIN_SECRET_LENGTH}); check the value"
        )
    register_secret(secret, what)
    return secret


# ==== help text =================================================================================
# What each command's ``--help`` ends with (its exit statuses), which shared flags it offers, and
# which ``--error-type`` values it accepts.
#
# Every command's help shows the shared flags it uses and no other: ``outages`` and ``dlq`` read
# a data directory and ask neither Plex nor Stash, ``bench`` runs on its own test servers.

#: The shared flags of a command that only prints (no data directory of the user's).
LOG_FLAGS = ("--json", "--verbose", "--quiet")
#: The shared flags of a read-only report on a data directory.
REPORT_FLAGS = ("--data-dir", *LOG_FLAGS)

#: Command -> the ``exit status:`` text its help ends with.
EXIT_STATUS = {
    "main": "exit status: 0 on success, 1 when the work failed, 2 on bad flags or configuration (or a missing"
    " extra), 130 on Ctrl-C; each command's --help says more.",
    "report": "exit status: 0 on success, 1 when a file cannot be read, 2 on bad flags or configuration.",
    "watch": "exit status: 0 when stopped by SIGINT or SIGTERM, 2 on bad flags or configuration (--notify without"
    " the notify extra, --http without the web extra or on a port in use too), 130 when a second signal interrupts it.",
    "demo": "exit status: 0 when the outage was recovered, 1 when it was not, 2 without the demo extra.",
    "bench": "exit status: 0 when every path ran and their results agree, 1 when a path failed or they differ,"
    " 2 on bad flags or without the demo extra.",
    "forget": "exit status: 0 when removed (or nothing to remove), 1 when the answer was not yes or a recovery kept"
    " the lock (nothing removed), 2 on bad flags or a data directory that is not PlexSync's.",
    "stash-plugin": "exit status: 0 when built, installed (or shown) or removed, 1 when a folder is missing or a"
    " file in the way is not the plugin's, 2 on bad flags or a SOURCE_DATE_EPOCH that is not a number.",
}


class SelectedFlags:
    """An argument group whose ``--help`` shows only the flags named in ``only`` (by any option string).

    The others are still accepted (and ignored by the command), so a script that passes the
    same shared flags to every command keeps working; they are only left out of the help.

    Args:
        group: Where the flags go.
        only: Option strings to show (``"--data-dir"``); None shows every flag.
    """

    def __init__(self, group: Any, only: Collection[str] | None) -> None:
        self.group = group
        self.only = None if only is None else frozenset(only)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        """Add the flag; hidden from the help unless it is selected."""
        if self.only is not None and not self.only.intersection(names):
            kwargs["help"] = argparse.SUPPRESS
        action: argparse.Action = self.group.add_argument(*names, **kwargs)
        return action


def check_error_types(wanted: list[str], in_dlq: Collection[str | None]) -> None:
    """Refuse an ``--error-type`` that is neither one of PlexSync's Plex error types nor in this DLQ.

    Raises:
        UsageError: One is unknown; the message lists the known types (and a close match).
    """
    import difflib

    from ..sync_queue.dlq_recovery import (
        OPTIONAL_RETRY_ERROR_TYPES,
        PERMANENT_ERROR_TYPES,
        SAFE_RETRY_ERROR_TYPES,
    )

    known = sorted(
        {*SAFE_RETRY_ERROR_TYPES, *OPTIONAL_RETRY_ERROR_TYPES, *PERMANENT_ERROR_TYPES}
        | {name for name in in_dlq if name}
    )
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown --error-type {name!r}{hint}: known types are {', '.join(known)}")


# ==== settings ==================================================================================
# What the command line is configured with: flags first, then the environment, then defaults.
#
# The shared flags (``--data-dir``, ``--plex-url`` ...) are accepted both before and after the
# subcommand; every one of them is added with ``default=SUPPRESS`` so that a flag given
# before the subcommand is not overwritten by the subparser's default. ``resolve`` then
# fills the gaps from the environment. Secrets (token, API key) are stripped of surrounding
# whitespace, refused when too short to be real, and registered for masking, as are the
# passwords written in the Plex and Stash URLs. ``Settings`` also
# builds the lazy Plex and Stash connections the commands use, failing with one clear
# ``UsageError`` that names the bad value.

DEFAULT_PLEX_URL = "http://localhost:32400"
DEFAULT_STASH_URL = "http://localhost:9999"

#: Settings attribute -> environment variable that supplies it when the flag is absent.
ENVIRONMENT = {
    "data_dir": "STASH_PLUGIN_DATA",
    "plex_url": "PLEX_URL",
    "plex_token": "PLEX_TOKEN",
    "stash_url": "STASH_URL",
    "stash_api_key": "STASH_API_KEY",
    "request_timeout": "PLEXSYNC_REQUEST_TIMEOUT",
}

#: Settings attribute -> what the secret is, in messages.
_SECRET_NAMES = {"plex_token": "Plex token", "stash_api_key": "Stash API key"}


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
        "--request-timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=quiet,
        help="most seconds one Plex or Stash request may take, whole answer included"
        f" (env PLEXSYNC_REQUEST_TIMEOUT; default {DEFAULT_REQUEST_DEADLINE:g})",
    )
    group.add_argument(
        "--include-optional",
        action="store_true",
        default=quiet,
        help="also recover PlexTemporaryError and PlexNotFound entries",
    )
    group.add_argument(
        "--no-outage-casualties",
        dest="outage_casualties",
        action="store_false",
        default=quiet,
        help="recover only PlexServerDown by default, not the PlexTemporaryError entries that show Plex"
        " unreachable, timing out or answering 5xx",
    )
    group.add_argument("--json", action="store_true", default=quiet, help="print JSON instead of tables")
    group.add_argument("-v", "--verbose", action="store_true", default=quiet, help="log DEBUG details")
    group.add_argument("-q", "--quiet", action="store_true", default=quiet, help="log errors only")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one command-line run.

    Attributes:
        data_dir: The PlexSync data directory, or None when neither flag nor env gave one and
            none was found in Stash's plugins folder.
        data_dir_looked: Where PlexSync's data directory was looked for when neither gave one.
        plex_url: Plex base URL.
        plex_token: Plex token, or None.
        stash_url: Stash URL.
        stash_api_key: Stash API key, or None.
        include_optional: Also recover the optional error types.
        request_timeout: Overall deadline of one Plex or Stash request, in seconds.
        outage_casualties: Recover an outage's ``PlexTemporaryError`` casualties by default.
        json: Print JSON instead of tables.
        verbose: Log at DEBUG and show tracebacks of unexpected errors.
        quiet: Log errors only.
    """

    data_dir: Path | None = None
    data_dir_looked: tuple[str, ...] = ()
    plex_url: str = DEFAULT_PLEX_URL
    plex_token: str | None = None
    stash_url: str = DEFAULT_STASH_URL
    stash_api_key: str | None = None
    include_optional: bool = False
    request_timeout: float = DEFAULT_REQUEST_DEADLINE
    outage_casualties: bool = True
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
            looked = "; ".join(self.data_dir_looked) or "nowhere"
            raise UsageError(
                f"no data directory: pass --data-dir DIR or set STASH_PLUGIN_DATA (PlexSync's was looked for in {looked})"
            )
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
            return PlexConnection(
                self.plex_url, self.plex_token, timeout=min(timeout, self.request_timeout), deadline=self.request_timeout
            )
        except ValueError as error:
            raise UsageError(str(error)) from None

    def stash_connection(self, timeout: float = 10.0) -> Any:
        """Return a lazy ``StashConnection`` (it does not talk to Stash yet).

        Raises:
            UsageError: The Stash URL is not an http(s) URL with a host and a valid port.
        """
        from ..stash.connection import StashConnection

        try:
            return StashConnection(
                self.stash_url, self.stash_api_key, timeout=min(timeout, self.request_timeout), deadline=self.request_timeout
            )
        except ValueError as error:
            raise UsageError(str(error)) from None


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

    data_dir = pick("data_dir", None)
    looked: tuple[str, ...] = ()
    if not data_dir:
        data_dir, looked = _plexsync_default_data_dir()
    for url_name in ("plex_url", "stash_url"):  # a password written in a URL is a secret too
        register_url(pick(url_name, None))
    request_timeout = getattr(args, "request_timeout", None)
    if request_timeout is None and env.get(ENVIRONMENT["request_timeout"]):
        try:
            request_timeout = positive_seconds(env[ENVIRONMENT["request_timeout"]])
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"{ENVIRONMENT['request_timeout']}: {error}") from None
    return Settings(
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        data_dir_looked=looked,
        plex_url=pick("plex_url", DEFAULT_PLEX_URL) or DEFAULT_PLEX_URL,
        plex_token=secret("plex_token"),
        stash_url=pick("stash_url", DEFAULT_STASH_URL) or DEFAULT_STASH_URL,
        stash_api_key=secret("stash_api_key"),
        include_optional=bool(getattr(args, "include_optional", False)),
        request_timeout=request_timeout or DEFAULT_REQUEST_DEADLINE,
        outage_casualties=bool(getattr(args, "outage_casualties", True)),
        json=bool(getattr(args, "json", False)),
        verbose=bool(getattr(args, "verbose", False)),
        quiet=bool(getattr(args, "quiet", False)),
    )


def _plexsync_default_data_dir() -> tuple[str | None, tuple[str, ...]]:
    """PlexSync's own data folder in Stash's plugins folder (bare metal or container), when it exists; and where it looked."""
    from ..plexsync_paths import cli_data_dir_search

    search = cli_data_dir_search()
    return (str(search.found) if search.found is not None else None), search.looked


# ==== open objects ==============================================================================
# Opening what the commands work on, from the settings: PlexSync's DLQ and queue, a checked Stash key and Plex token.
#
# Each failure becomes one clear ``CliError`` that names the bad file or flag. The package's
# heavier modules are imported only when a command opens something.

def require_stash_key_accepted(stash: Any) -> None:
    """Connect to Stash now, so that a rejected API key stops the command before any run (exit 2).

    A Stash that cannot be reached is left for the run to report (its entries are deferred).

    Raises:
        StashKeyRejected: Stash answered 401/403 (a ``ConfigurationError``: ``main`` names the
            key's flag and variable).
    """
    from ..stash.connection import StashKeyRejected, StashUnavailable

    try:
        stash.client()
    except StashKeyRejected:
        raise
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


#: Where the CLI takes the Plex token from.
TOKEN_HINT = hint(PLEX_TOKEN, CLI)


def refuse_rejected_plex_token(settings: Settings, timeout: float = 5.0) -> None:
    """Probe Plex once; a Plex that is down passes (recovery defers), a rejected token does not.

    Raises:
        ConfigurationError: Plex answered 401/403 to the configured token (or to none); ``main``
            prints it with ``TOKEN_HINT`` and exits 2.
    """
    plex = settings.plex_connection(timeout=timeout)
    try:
        probe = probe_plex(plex, timeout=timeout)
    finally:
        plex.close()
    if probe.state != PLEX_TOKEN_REJECTED:
        return
    raise token_rejection(plex)


# ==== the status page ===========================================================================
# ``watch --http HOST:PORT`` and ``--http-token TOKEN`` (or their variables): where the status
# page listens and the token its actions need, checked before the daemon starts. The server
# itself (``web.server``) needs the ``web`` extra and is imported only when the page is on.

#: The variables that stand in for ``--http`` and ``--http-token``.
HTTP_VARIABLE = "PLEXSYNC_RECOVERY_HTTP"
HTTP_TOKEN_VARIABLE = "PLEXSYNC_RECOVERY_HTTP_TOKEN"


@dataclass(frozen=True)
class HttpSettings:
    """Where the status page listens, and the token its actions need (None: no actions)."""

    host: str
    port: int
    token: str | None = field(default=None, repr=False)


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--http`` and ``--http-token`` (``watch``)."""
    from ..web import MIN_TOKEN_LENGTH

    group = parser.add_argument_group("status page, metrics and health check (the 'web' extra)")
    group.add_argument(
        "--http",
        type=listen_address,
        default=None,
        metavar="HOST:PORT",
        help=f"serve the status page (/), Prometheus metrics (/metrics) and a health check (/healthz) there"
        f" (env {HTTP_VARIABLE}; a port alone listens on {DEFAULT_LISTEN_HOST}; off by default)",
    )
    group.add_argument(
        "--http-token",
        metavar="TOKEN",
        default=None,
        help=f"allow the page's actions (preview, recover, retry) to whoever gives this token, at least"
        f" {MIN_TOKEN_LENGTH} characters (env {HTTP_TOKEN_VARIABLE}); without it the page has no actions",
    )


def http_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> HttpSettings | None:
    """``--http`` and ``--http-token``, else their variables; None when the page is off.

    The token is stripped and registered for masking like every secret.

    Raises:
        UsageError: The address is not HOST:PORT, the token is too short to guard recoveries, or a
            token is set while the page is off (the message names the flag or variable, never the token).
    """
    from ..web import MIN_TOKEN_LENGTH

    env = os.environ if environ is None else environ
    address = getattr(args, "http", None)
    if address is None and env.get(HTTP_VARIABLE, "").strip():
        try:
            address = listen_address(env[HTTP_VARIABLE])
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"{HTTP_VARIABLE}: {error}") from None
    token = clean_secret(getattr(args, "http_token", None)) or clean_secret(env.get(HTTP_TOKEN_VARIABLE))
    given_by = f"--http-token / {HTTP_TOKEN_VARIABLE}"
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(
            f"the status page token ({given_by}) is {len(token)} characters long: too short to guard recoveries"
            f" (at least {MIN_TOKEN_LENGTH}); choose a longer one"
        )
    register_secret(token, "status page token")
    if address is None:
        if token is not None:
            raise UsageError(f"a status page token is set ({given_by}) but the page is off: add --http HOST:PORT"
                             f" (or {HTTP_VARIABLE})")
        return None
    return HttpSettings(address[0], address[1], token)


def require_web_extra() -> None:
    """Fail now, before anything starts, when the ``web`` extra is missing.

    Raises:
        UsageError: ``prometheus_client`` cannot be imported (the message names the extra).
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--http needs prometheus-client, from the 'web' extra: pip install '{DISTRIBUTION}[web]'"
        ) from None


def open_status_server(http: HttpSettings, daemon: Any, stash: Any) -> Any:
    """Bind the status page of ``daemon`` (``web.server.StatusServer``; ``start`` it to serve).

    Raises:
        UsageError: The address cannot be listened on (in use, not this machine's), naming it.
    """
    from ..web.server import StatusServer

    try:
        return StatusServer(daemon, http.host, http.port, token=http.token, stash=stash)
    except OSError as error:
        raise UsageError(f"--http {http.host}:{http.port}: cannot listen there: {error.strerror or error}") from None
