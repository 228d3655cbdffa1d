"""The command line's log and its listeners: who hears a command's outages and recoveries besides its output.

Logging goes to one stderr handler with every configured secret scrubbed (a second line
of defence behind ``redaction``). While ``watch`` or ``recover`` runs inside
``listeners(args)``, every event is written as a JSON line (``--json``), installed
subscribers are loaded (unless ``--no-subscribers``), notifications are sent (``--notify``),
and a progress bar is drawn on a terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, TextIO

from ..events import EventRelay, event_signals
from ..formatting import Output, ProgressBar, wants_progress_bar
from ..redaction import PACKAGE_LOGGER, SecretRedactor, redact_record
from .settings import UsageError

__all__ = ['LoggingHandle', 'RedactingFilter', 'RedactingFormatter', 'configure_logging', 'JsonLines', 'add_listener_arguments', 'listeners']


# ==== logging setup =============================================================================
# Logging for the command line: one stderr handler, with every configured secret scrubbed.
#
# The library never logs the Plex token or the Stash API key, and ``redaction`` masks any that
# slips into a record of the package as the record is made; this is one more line of defence,
# with the same redactor. The handler carries a filter that masks each record's message,
# arguments and traceback (``redaction.redact_record``); its formatter scrubs the final line
# once more. It is attached to the ``plexsync_recovery_plugin`` logger tree, and (warnings
# only) to ``plexapi``'s logger, whose records ``redaction`` does not see.

PLEXAPI_LOGGER = "plexapi"


class RedactingFilter(logging.Filter):
    """Masks the secrets of each record passing through (message, arguments, traceback, stack)."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; never drops it (a broken format string is shown without its arguments)."""
        try:
            record.getMessage()
        except Exception:
            record.msg, record.args = f"{record.msg} (unformattable arguments)", None
        redact_record(record, self.redactor)
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose output is scrubbed once more; offers ``%(level)s`` (lower-case level name)."""

    def __init__(self, fmt: str, redactor: SecretRedactor, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        """``2026-02-15T19:17:49.123Z``: ISO-8601, UTC, like every other time the command shows."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask every secret in the whole text (message, traceback, stack)."""
        record.level = record.levelname.lower()
        return self.redactor(super().format(record))


#: One-shot commands: reads like the error line (``plexsync-recovery: warning: ...``).
SHORT_FORMAT = "plexsync-recovery: %(level)s: %(message)s"
#: The watch daemon and ``-v``: when (ISO-8601 UTC), how bad, and which module.
LONG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@dataclass
class LoggingHandle:
    """What ``configure_logging`` changed, so ``close`` can put it back (``main`` may run many times)."""

    handlers: list[tuple[logging.Logger, logging.Handler]] = field(default_factory=list)
    levels: list[tuple[logging.Logger, int]] = field(default_factory=list)

    def close(self) -> None:
        """Detach the handlers and restore the logger levels."""
        for logger, handler in self.handlers:
            logger.removeHandler(handler)
            handler.close()
        for logger, level in self.levels:
            logger.setLevel(level)
        self.handlers.clear()
        self.levels.clear()


def configure_logging(
    level: int,
    redactor: SecretRedactor,
    *,
    long_format: bool = False,
    stream: TextIO | None = None,
) -> LoggingHandle:
    """Send the package's log records at ``level`` and up, and plexapi's warnings, to stderr, scrubbed.

    Args:
        level: The package logger's level (DEBUG, INFO, WARNING, ERROR).
        redactor: Knows the secrets to mask.
        long_format: Timestamps, level and logger name (the daemon, ``-v``) instead of the short form.
        stream: Where to write; ``sys.stderr`` when None.

    Returns:
        A handle whose ``close()`` undoes everything.
    """
    handle = LoggingHandle()
    formatter = RedactingFormatter(LONG_FORMAT if long_format else SHORT_FORMAT, redactor)
    for name, handler_level in ((PACKAGE_LOGGER, logging.NOTSET), (PLEXAPI_LOGGER, logging.WARNING)):
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setLevel(handler_level)
        handler.addFilter(RedactingFilter(redactor))
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        handle.handlers.append((logger, handler))
        if name == PACKAGE_LOGGER:
            handle.levels.append((logger, logger.level))
            logger.setLevel(level)
    return handle


# ==== listeners =================================================================================
# Who hears a command's outages and recoveries besides its own output: JSON lines, subscribers, notifications.
#
# ``watch`` and ``recover`` call ``add_listener_arguments`` when they register and run their
# work inside ``listeners(args)``, which, for as long as the command runs:
#
# - writes every event (:mod:`..events`) as one JSON object per line on stdout (``json_events``,
#   ``watch --json``), flushed at once, masked like all output;
# - loads the third-party subscribers (:mod:`..subscribers`) unless ``--no-subscribers``;
# - sends a short notification per outage and per recovery to each ``--notify`` URL
#   (:mod:`..notify`, needs the ``notify`` extra);
# - draws ``recovery_progress`` as a bar on a terminal's stderr (``progress``, for ``recover``).

NOTIFY_VARIABLE = "PLEXSYNC_RECOVERY_NOTIFY"


class JsonLines:
    """Writes each event as one compact JSON line on the command's stdout (thread-safe, flushed)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        """Write ``event``, masked."""
        text = json.dumps(self.out.redactor.redact_data(event), default=str)
        with self._lock:
            self.out.stdout.write(text + "\n")
            self.out.stdout.flush()


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-subscribers`` and ``--notify`` to a command that recovers."""
    group = parser.add_argument_group("who else hears of outages and recoveries")
    group.add_argument(
        "--no-subscribers",
        action="store_true",
        help="do not load the receivers installed under the 'plexsync_recovery.subscribers' entry points"
        " (env PLEXSYNC_RECOVERY_NO_SUBSCRIBERS=1)",
    )
    group.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help=f"send a short message per outage and per recovery to this Apprise URL (repeatable; env {NOTIFY_VARIABLE},"
        " separated by spaces or commas; needs the 'notify' extra)",
    )


def notify_urls(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The ``--notify`` URLs, else the ones in ``PLEXSYNC_RECOVERY_NOTIFY`` (spaces or commas between)."""
    given = [url.strip() for url in getattr(args, "notify", None) or [] if url.strip()]
    if given:
        return given
    return [url for url in environ.get(NOTIFY_VARIABLE, "").replace(",", " ").split() if url]


def _progress_bar(args: argparse.Namespace, out: Output, stack: ExitStack) -> None:
    """Draw ``recovery_progress`` on stderr when it is a terminal (not with ``--json`` or ``-q``)."""
    signal = event_signals().get("recovery_progress")
    quiet = bool(getattr(getattr(args, "settings", None), "quiet", False))
    if signal is None or not wants_progress_bar(out.stderr, json_mode=out.json_mode, quiet=quiet):
        return
    bar = ProgressBar(out.stderr)
    stack.callback(bar.finish)
    stack.enter_context(signal.connected_to(bar))


@contextmanager
def listeners(
    args: argparse.Namespace,
    out: Output,
    *,
    json_events: bool = False,
    progress: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Connect the command's extra listeners for the duration of the block (``progress``: the bar).

    Raises:
        UsageError: ``--notify`` was given without the ``notify`` extra installed, or a URL is not one Apprise knows.
    """
    env = os.environ if environ is None else environ
    with ExitStack() as stack:
        urls = notify_urls(args, env)
        if urls:
            from ..notify import Notifier, NotifyError

            try:
                notifier = Notifier(urls)
            except NotifyError as error:
                raise UsageError(str(error)) from None
            stack.callback(notifier.close)
            stack.enter_context(EventRelay(notifier))
        if json_events:
            stack.enter_context(EventRelay(JsonLines(out)))
        if progress:
            _progress_bar(args, out, stack)
        if not getattr(args, "no_subscribers", False):
            from ..subscribers import load_subscribers

            load_subscribers(environ=env)
        yield
