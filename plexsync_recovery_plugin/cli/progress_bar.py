"""A one-line progress bar on a terminal: entries done of the total, the rate, and the time left.

``recover`` shows it on stderr while a run sends ``recovery_progress`` (kwargs ``done``,
``total``, ``counts``), and only when stderr is a terminal and neither ``--json`` nor
``-q`` was given: a log file or a pipe gets nothing. The bar redraws in place (carriage
return) at most ten times a second, and always for the last entry; a run that starts again
from fewer entries (the next pending window) starts a new line.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, TextIO

from .output import format_duration

__all__ = ["ProgressBar", "wants_progress_bar"]

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def wants_progress_bar(stream: TextIO, *, json_mode: bool, quiet: bool) -> bool:
    """Whether to draw a bar on ``stream``: a terminal, and neither JSON output nor ``-q``."""
    if json_mode or quiet:
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed stream
        return False


class ProgressBar:
    """Draws ``[=====>     ] 1,200/5,000 entries  24%  830/s  4.6s left`` in place on ``stream``.

    Usable as a ``recovery_progress`` receiver: ``bar(sender, done=..., total=..., counts=...)``.

    Args:
        stream: A terminal.
        clock: Monotonic seconds (tests drive it).
    """

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self._started: float | None = None
        self._first_done = 0
        self._last_draw = float("-inf")
        self._last_done = -1
        self._width = 0

    def __call__(self, sender: Any = None, *, done: int, total: int | None, counts: Mapping[str, int] | None = None,
                 **kwargs: Any) -> None:
        """Record progress and redraw if due."""
        self.update(done, total)

    def update(self, done: int, total: int | None) -> None:
        """``done`` of ``total`` entries are handled (``total`` None: not counted yet)."""
        now = self.clock()
        if done < self._last_done:  # a new run
            self.finish()
        if self._started is None:
            self._started, self._first_done = now, done
        self._last_done = done
        if (total is None or done < total) and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        self._draw(self.render(done, total, now - self._started, done - self._first_done))

    @staticmethod
    def render(done: int, total: int | None, elapsed: float, progressed: int) -> str:
        """The bar's text for ``done`` of ``total`` after ``elapsed`` seconds that handled ``progressed`` entries."""
        if total is None:  # the window is still being counted
            return f"[{' ' * BAR_WIDTH}] {done:,} entries"
        fraction = min(1.0, done / total) if total > 0 else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * max(0, BAR_WIDTH - filled - 1)
        text = f"[{bar}] {done:,}/{total:,} entries {fraction:4.0%}"
        if elapsed > 0 and progressed > 0:
            rate = progressed / elapsed
            text += f"  {rate:,.0f}/s  {format_duration(max(0, total - done) / rate)} left"
        return text

    def _draw(self, text: str) -> None:
        padding = " " * max(0, self._width - len(text))
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        """End the line if a bar was drawn; the next update starts afresh."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._started, self._last_draw, self._last_done, self._width = None, float("-inf"), -1, 0
