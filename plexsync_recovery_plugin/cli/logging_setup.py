"""Logging for the command line: one stderr handler, with every configured secret scrubbed.

The library never logs the Plex token or the Stash API key, and ``redaction`` masks any that
slips into a record of the package as the record is made; this is one more line of defence,
with the same redactor. The handler carries a filter that masks each record's message,
arguments and traceback (``redaction.redact_record``); its formatter scrubs the final line
once more. It is attached to the ``plexsync_recovery_plugin`` logger tree, and (warnings
only) to ``plexapi``'s logger, whose records ``redaction`` does not see.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from ..redaction import MASK, PACKAGE_LOGGER, SecretRedactor, redact_record

__all__ = ["MASK", "LoggingHandle", "RedactingFilter", "RedactingFormatter", "SecretRedactor", "configure_logging"]

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
