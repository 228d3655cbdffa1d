"""Who hears a command's outages and recoveries besides its own output: JSON lines, subscribers, notifications.

``watch`` and ``recover`` call ``add_listener_arguments`` when they register and run their
work inside ``listeners(args)``, which, for as long as the command runs:

- writes every event (:mod:`..events`) as one JSON object per line on stdout (``json_events``,
  ``watch --json``), flushed at once, masked like all output;
- loads the third-party subscribers (:mod:`..subscribers`) unless ``--no-subscribers``;
- sends a short notification per outage and per recovery to each ``--notify`` URL
  (:mod:`..notify`, needs the ``notify`` extra);
- draws ``recovery_progress`` as a bar on a terminal's stderr (``progress``, for ``recover``).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Mapping

from ..events import EventRelay, event_signals
from .output import Output
from .progress_bar import ProgressBar, wants_progress_bar
from .errors import UsageError

__all__ = ["JsonLines", "add_listener_arguments", "listeners"]

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
            from ..notify import NotifyError, Notifier

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
