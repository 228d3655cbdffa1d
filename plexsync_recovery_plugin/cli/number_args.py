"""``argparse`` types for counts and durations, each naming the bad value in its error.

A count of ``0`` where one is needed, ``nan`` seconds or ``inf`` seconds are refused at
parse time, so the commands never see them.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

__all__ = ["non_negative_int", "positive_int", "positive_seconds"]


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
