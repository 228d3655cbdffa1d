"""What the command line is configured with: flags first, then the environment, then defaults.

The shared flags (``--data-dir``, ``--plex-url`` ...) are accepted both before and after the
subcommand; every one of them is added with ``default=SUPPRESS`` so that a flag given
before the subcommand is not overwritten by the subparser's default. ``resolve`` then
fills the gaps from the environment. Secrets (token, API key) are stripped of surrounding
whitespace, refused when too short to be real, and registered for masking, as are the
passwords written in the Plex and Stash URLs. ``Settings`` also
builds the lazy Plex and Stash connections the commands use, failing with one clear
``UsageError`` that names the bad value.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping

from ..http_url import DEFAULT_REQUEST_DEADLINE
from ..redaction import clean_secret, register_url
from .arg_types import positive_seconds
from .errors import UsageError
from .help_text import SelectedFlags
from .secret_args import secret_setting

__all__ = ["DEFAULT_PLEX_URL", "DEFAULT_STASH_URL", "ENVIRONMENT", "Settings", "add_common_arguments", "resolve"]

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
        data_dir: The PlexSync data directory, or None when neither flag nor env gave one.
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

    data_dir = pick("data_dir", None) or _plexsync_default_data_dir()
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


def _plexsync_default_data_dir() -> str | None:
    """PlexSync's own data folder under Stash's default plugins folder, when it exists."""
    from ..plexsync_paths import cli_default_data_dir

    found = cli_default_data_dir()
    return str(found) if found is not None else None
