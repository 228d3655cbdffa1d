"""Writing to Stash's log and task bar the way Stash reads a plugin's stderr.

Stash reads each stderr line of a plugin as ``\\x01<level>\\x02<message>``, where the level
is ``t``, ``d``, ``i``, ``w``, ``e`` (trace .. error) or ``p`` (progress: a number from 0
to 1 shown in the task bar). This is the protocol ``stashapi.log`` writes; it is written
here with the standard library because the hook's quick check must not import stashapi.

Every line passes through the package's redaction (Plex token, Stash session cookie, URL
passwords, in every form), masked before it is cut, so no log line of the plugin can show one.
"""

from __future__ import annotations

import logging
import sys
from typing import Iterable, TextIO

from urllib.parse import quote

from ..redaction import REDACTOR, register_secret, safe_excerpt

__all__ = ["MASK", "PACKAGE_LOGGER", "StashLogHandler", "install_stash_logging", "stash_log_line"]

PACKAGE_LOGGER = "plexsync_recovery_plugin"
MASK = "***"

_START, _END = "\x01", "\x02"
_LEVELS = ((logging.ERROR, "e"), (logging.WARNING, "w"), (logging.INFO, "i"), (logging.DEBUG, "d"))
#: Stash reads a line into a 64 KiB buffer; longer lines are cut to this.
_MAX_LINE = 64000


def _level_letter(levelno: int) -> str:
    return next((letter for threshold, letter in _LEVELS if levelno >= threshold), "t")


def stash_log_line(letter: str, text: str) -> str:
    """One protocol line (without a newline in the text) for the level ``letter``."""
    flat = " ".join(text.split()) if any(ch in text for ch in "\r\n") else text
    return f"{_START}{letter}{_END}{flat if len(flat) <= _MAX_LINE else safe_excerpt(flat, _MAX_LINE)}\n"


class StashLogHandler(logging.Handler):
    """A ``logging`` handler that writes Stash's protocol lines, secrets masked.

    A traceback (``exc_info``) is written as one line per traceback line at the record's level.

    Args:
        stream: Where to write; ``sys.stderr`` at write time when None.
        secrets: Values to mask in every line.
    """

    def __init__(self, stream: TextIO | None = None, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._stream = stream
        self._secrets: list[str] = []
        self.add_secrets(*secrets)

    def add_secrets(self, *secrets: str | None) -> None:
        """Mask these values too (empty ones are ignored), in every form ``redaction`` knows.

        The package's redactor skips values too short to tell from text; this handler's own
        lines still mask them, raw and URL-encoded.
        """
        for secret in secrets:
            if secret:
                register_secret(secret)
                self._secrets.extend(form for form in (secret, quote(secret, safe="")) if form not in self._secrets)
        self._secrets.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        text = REDACTOR(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as protocol lines."""
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            letter = _level_letter(record.levelno)
            stream = self._stream or sys.stderr
            for line in self.mask(message).splitlines() or [""]:
                stream.write(stash_log_line(letter, line))
            stream.flush()
        except Exception:
            self.handleError(record)

    def progress(self, fraction: float) -> None:
        """Show ``fraction`` (clamped to 0..1) in Stash's task bar."""
        stream = self._stream or sys.stderr
        stream.write(stash_log_line("p", f"{min(1.0, max(0.0, fraction)):.3f}"))
        stream.flush()


def install_stash_logging(
    level: int = logging.INFO, stream: TextIO | None = None, secrets: Iterable[str | None] = ()
) -> StashLogHandler:
    """Send the package's log records (and plexapi's warnings) to Stash's log; return the handler."""
    handler = StashLogHandler(stream, secrets)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    plexapi = logging.getLogger("plexapi")
    plexapi.addHandler(handler)
    plexapi.setLevel(max(level, logging.WARNING))
    plexapi.propagate = False
    return handler
