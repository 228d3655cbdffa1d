"""How every front door puts values and results into words: times, durations, counts, tables, a progress bar.

The command line, the daemon and the Stash plugin print the same things the same way
because they all format here. ``Output`` is the command line's only writer (aligned tables
or JSON on stdout, one-line errors on stderr); everything it writes passes through the
secret redactor, so even a DLQ error message holding a token is printed masked.
``ProgressBar`` draws ``recovery_progress`` on a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from .redaction import REDACTOR, SecretRedactor, safe_excerpt

__all__ = ['Output', 'PROG', 'describe_result', 'describe_window', 'format_duration', 'format_table', 'format_time', 'iso_time', 'one_line', 'truncate', 'ProgressBar', 'wants_progress_bar']


# ==== output ====================================================================================
# The command line's only writer: aligned tables or JSON on stdout, one-line errors (text or JSON) on stderr.
#
# Everything written passes through the secret redactor, so even a DLQ error message that
# happens to contain a token is printed masked. Small formatting helpers (times, durations,
# truncation) live here too, so every command renders values the same way.

PROG = "plexsync-recovery"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(values: list[Any]) -> bool:
    present = [value for value in values if value is not None]
    return bool(present) and all(_is_number(value) for value in present)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return one_line(str(value))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, align: str | None = None) -> list[str]:
    """Render rows as aligned text lines: a header, a rule, then one line per row.

    Args:
        headers: Column titles.
        rows: Cell values; None shows as ``-``; newlines become spaces.
        align: One ``l``/``r`` per column; by default numeric columns go right, others left.

    Returns:
        The lines, without trailing spaces.

    Raises:
        ValueError: A row or ``align`` does not have one entry per column.
    """
    materialized = [list(row) for row in rows]
    width = len(headers)
    for row in materialized:
        if len(row) != width:
            raise ValueError(f"table row has {len(row)} cells for {width} columns: {row!r}")
    if align is None:
        align = "".join("r" if _numeric_column([row[i] for row in materialized]) else "l" for i in range(width))
    if len(align) != width:
        raise ValueError(f"align {align!r} must have one letter per column ({width})")
    text_rows = [[_cell(value) for value in row] for row in materialized]
    widths = [max([len(headers[i])] + [len(row[i]) for row in text_rows]) for i in range(width)]

    def render(cells: Sequence[str]) -> str:
        parts = [cell.rjust(w) if a == "r" else cell.ljust(w) for cell, w, a in zip(cells, widths, align)]
        return "  ".join(parts).rstrip()

    return [render(headers), render(["-" * w for w in widths])] + [render(row) for row in text_rows]


def iso_time(value: Any) -> str | None:
    """Unix seconds as ``2026-02-15T19:17:49Z``, the one spelling of a time in JSON and log lines.

    None stays None; anything that is not a representable time is shown as its ``repr``.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
        except (OverflowError, OSError, ValueError):
            pass
    return repr(value)


def format_time(unix_seconds: float | None) -> str:
    """``2026-02-15 19:17:49Z`` (UTC, whole seconds), or ``-`` for None."""
    if unix_seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(float(unix_seconds)))


def describe_window(start: float | None, end: float | None, received: tuple[float, float] | None = None) -> str:
    """An outage window in words, the same in every door: ``2026-02-15 19:00:00Z .. 2026-02-15 19:30:00Z``.

    ``received``, when given, is the window asked for and names the outage; the window
    searched (``start``..``end``: whole seconds, merged with pending ones) follows in
    parentheses when it reads otherwise.
    """
    searched = f"{format_time(start)} .. {format_time(end)}"
    if received is None:
        return searched
    asked = f"{format_time(received[0])} .. {format_time(received[1])}"
    return asked if asked == searched else f"{asked} (searched {searched})"


def describe_result(result: object, start: float | None, end: float | None, received: tuple[float, float] | None = None) -> str:
    """One line for a finished run: its outage window (``describe_window``), then the result's own rendering."""
    return f"outage {describe_window(start, end, received)}: {result}"


def format_duration(seconds: float | None) -> str:
    """A short human duration: ``0.4s``, ``42s``, ``3m 05s``, ``2h 01m 40s``, ``3d 04h 05m``; ``n/a`` for None."""
    if seconds is None:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def one_line(text: str) -> str:
    """Collapse line breaks and tabs into single spaces."""
    return " ".join(text.split()) if any(ch in text for ch in "\r\n\t") else text


def truncate(text: str | None, limit: int = 60) -> str:
    """One line of at most ``limit`` characters, ending in ``...`` when cut; secrets masked before the cut."""
    return safe_excerpt(one_line(text or ""), limit)


class Output:
    """Writes the command's results; every text passes through ``redactor``.

    Args:
        redactor: Masks the secrets; the package's ``REDACTOR`` when None.
        json_mode: Commands print JSON instead of tables when True.
        stdout: Results; ``sys.stdout`` at write time when None.
        stderr: Errors and notes; ``sys.stderr`` at write time when None.
    """

    def __init__(
        self,
        redactor: SecretRedactor | None = None,
        *,
        json_mode: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.redactor = REDACTOR if redactor is None else redactor
        self.json_mode = json_mode
        self._stdout = stdout
        self._stderr = stderr

    @property
    def stdout(self) -> TextIO:
        """The result stream."""
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        """The diagnostics stream."""
        return self._stderr or sys.stderr

    def line(self, text: str = "") -> None:
        """Write one line of results."""
        self.stdout.write(self.redactor(text) + "\n")

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        align: str | None = None,
    ) -> None:
        """Write an aligned table, with an optional title line above it."""
        if title:
            self.line(title)
        for text in format_table(headers, rows, align=align):
            self.line(text)

    def json(self, data: Any) -> None:
        """Write ``data`` as indented JSON (masked field by field, so the JSON stays valid)."""
        self.stdout.write(json.dumps(self.redactor.redact_data(data), indent=2, default=str) + "\n")

    def error(self, message: str) -> None:
        """Write ``plexsync-recovery: error: <message>`` as one line on stderr.

        In JSON mode the line is a JSON object instead: ``{"error": "<message>"}``.
        """
        if self.json_mode:
            text = json.dumps({"error": self.redactor(one_line(str(message)))})
        else:
            text = self.redactor(f"{PROG}: error: {one_line(str(message))}")
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def raw_stderr(self, text: str) -> None:
        """Write multi-line diagnostics (a ``-v`` traceback), masked."""
        self.stderr.write(self.redactor(text))
        self.stderr.flush()


# ==== progress bar ==============================================================================
# A one-line progress bar on a terminal: entries done of the total, the rate, and the time left.
#
# ``recover`` shows it on stderr while a run sends ``recovery_progress`` (kwargs ``done``,
# ``total``, ``counts``), and only when stderr is a terminal and neither ``--json`` nor
# ``-q`` was given: a log file or a pipe gets nothing. The bar redraws in place (carriage
# return) at most ten times a second, and always for the last entry; a run that starts again
# from fewer entries (the next pending window) starts a new line.

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
