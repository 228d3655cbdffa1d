"""Logging for the command line: one stderr handler, with every configured secret scrubbed.

The library never logs the Plex token or the Stash API key; this is the second line of
defence. The handler carries a filter that renders each record's message, replaces every
secret (and its URL-encoded form) by ``***`` and drops the arguments, and also scrubs the
traceback text; its formatter scrubs the final line once more. It is attached to the
``plexsync_recovery_plugin`` logger tree, and (warnings only) to ``plexapi``'s logger.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO
from urllib.parse import quote

__all__ = ["MASK", "LoggingHandle", "RedactingFilter", "RedactingFormatter", "SecretRedactor", "configure_logging"]

MASK = "***"

PACKAGE_LOGGER = "plexsync_recovery_plugin"
PLEXAPI_LOGGER = "plexapi"


class SecretRedactor:
    """Replaces every known secret in a text by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"SecretRedactor({len(self._secrets)} secrets)"

    def add(self, *secrets: str | None) -> None:
        """Remember more secrets (empty values are ignored); the URL-encoded form is covered too."""
        for secret in secrets:
            if not secret:
                continue
            for form in (secret, quote(secret, safe="")):
                if form not in self._secrets:
                    self._secrets.append(form)
        self._secrets.sort(key=len, reverse=True)  # a secret inside a longer one must not leave a tail

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def redact_data(self, value: Any) -> Any:
        """Return a copy of JSON-like data with every string (keys too) masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.redact_data(key): self.redact_data(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_data(item) for item in value]
        return value


class RedactingFilter(logging.Filter):
    """Renders the record's message with its args, masks the secrets, and masks the traceback text."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we can, without the args
            message = f"{record.msg} (unformattable arguments)"
        record.msg = self.redactor(str(message))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose output is scrubbed once more; offers ``%(level)s`` (lower-case level name)."""

    def __init__(self, fmt: str, redactor: SecretRedactor, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask every secret in the whole text (message, traceback, stack)."""
        record.level = record.levelname.lower()
        return self.redactor(super().format(record))


#: One-shot commands: reads like the error line (``plexsync-recovery: warning: ...``).
SHORT_FORMAT = "plexsync-recovery: %(level)s: %(message)s"
#: The watch daemon and ``-v``: when, how bad, and which module.
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
