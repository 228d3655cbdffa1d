"""The values the command line takes, checked as they are parsed, each error naming the bad value.

Counts and durations: a count of ``0`` where one is needed, ``nan`` seconds or ``inf``
seconds are refused at parse time, so the commands never see them.

Times: window bounds given on the command line: ISO 8601 or Unix seconds, turned into Unix seconds.

A time without a zone is UTC (PlexSync's ``dlq.db`` stores UTC). Times before 1970 or after
9999 are refused with the flag and the value named, so a typo never selects nothing quietly.
"""

from __future__ import annotations

import argparse
import math
import re
from datetime import datetime, timezone
from typing import Any, Callable

from .errors import UsageError

__all__ = ["TIME_HELP", "non_negative_int", "parse_time", "parse_window", "positive_int", "positive_seconds"]


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
