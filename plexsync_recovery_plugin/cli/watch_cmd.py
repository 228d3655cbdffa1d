"""``plexsync-recovery watch``: run the watch daemon in the foreground until SIGINT or SIGTERM.

The daemon runs on the main thread. The clients are lazy, so it starts, and keeps
probing, while Plex and Stash are both down, and while PlexSync has not created ``dlq.db``
yet (it waits for the file and never creates it). SIGINT and SIGTERM ask it to stop; it
finishes the tick it is in and returns, and the command exits 0 without a traceback. A
second signal while it is finishing interrupts it (exit 130).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

from .errors import UsageError
from .help_text import EXIT_STATUS
from .listeners import add_listener_arguments, listeners
from .arg_types import positive_int, positive_seconds
from .open_objects import TOKEN_HINT, open_dlq, open_job_queue
from .settings import Settings, add_common_arguments

if TYPE_CHECKING:
    from ..worker.watch import WatchSettings

__all__ = ["SignalSafeEvent", "register", "run"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalSafeEvent:
    """A stop flag that a signal handler may set: ``is_set``, ``set`` and ``wait`` like ``threading.Event``.

    ``threading.Event.set`` takes the event's internal lock; a signal handler that calls it
    while the main thread is inside ``Event.wait`` holding that same lock would deadlock.
    This flag takes no lock: ``set`` stores a bool and writes one byte to a pipe, and
    ``wait`` sleeps in ``select`` on that pipe, so it wakes at once.
    """

    def __init__(self) -> None:
        self._flag = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake a waiter (safe inside a signal handler)."""
        self._flag = True
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):  # pipe full or closed: the flag alone is enough
            pass

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds pass; return the flag."""
        if not self._flag:
            select.select([self._read_fd], [], [], timeout)
        return self._flag

    def close(self) -> None:
        """Release the pipe."""
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``watch`` subcommand."""
    parser = subparsers.add_parser(
        "watch",
        help="probe Plex, record outages, and recover each one when it ends (foreground)",
        description="Probe Plex's /identity every --interval seconds. --fail-threshold failed probes in a row "
        "open an outage (dated from the last healthy probe before them), --recover-threshold healthy ones "
        "close it, and the closed outage's DLQ entries are recovered. Outages PlexSync records in "
        "outage_history.json are recovered too; the daemon keeps its own in recovery_state.db and never "
        "writes PlexSync's files. A token Plex rejects is reported, not taken for an outage. Logs state "
        "changes (-v: every probe). Stops cleanly on SIGINT or SIGTERM.",
        epilog=EXIT_STATUS["watch"],
    )
    parser.add_argument("--interval", type=positive_seconds, default=5.0, metavar="SECONDS", help="between probes (default 5)")
    parser.add_argument(
        "--fail-threshold", type=positive_int, default=3, metavar="N", help="failed probes that open an outage (default 3)"
    )
    parser.add_argument(
        "--recover-threshold", type=positive_int, default=2, metavar="N", help="healthy probes that close it (default 2)"
    )
    parser.add_argument(
        "--probe-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a probe waits for Plex (default: the smaller of 3 and --interval)",
    )
    parser.add_argument(
        "--retry-interval",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="while Plex is up, retry the outage windows still pending at most this often (default 60)",
    )
    add_listener_arguments(parser)
    add_common_arguments(parser)
    parser.set_defaults(func=run, log_level=logging.INFO, log_long_format=True)


def _install_handlers(stop: SignalSafeEvent, received: list[int]) -> dict[int, Any]:
    # No logging in here: writing to stderr from a handler can re-enter a write in progress.
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # asked twice: stop now
        received.append(signum)
        stop.set()

    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handle)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def run(args: argparse.Namespace, *, on_ready: Callable[[Any], None] | None = None) -> int:
    """Run the daemon until a stop signal; return the exit code.

    Args:
        args: The parsed flags with ``settings`` attached.
        on_ready: Called with the daemon just before it starts (for tests).

    Raises:
        UsageError: A setting is out of range (the message names it).
    """
    from ..worker.watch import WatchDaemon

    settings: Settings = args.settings
    data_dir = settings.require_data_dir()
    watch_settings = _watch_settings(args)
    probe_timeout = watch_settings.probe_timeout
    plex = settings.plex_connection(timeout=probe_timeout)
    stash = settings.stash_connection()
    queues: list[Any] = []
    opener = _plugin_opener(settings, data_dir, plex, stash, queues, lock_wait=watch_settings.interval)
    stop = SignalSafeEvent()
    received: list[int] = []
    previous = _install_handlers(stop, received)
    try:
        with listeners(args, args.out, json_events=settings.json):  # --json: events on stdout, one per line
            # PlexSync creates dlq.db; until it has, the daemon watches and waits (it never creates it).
            plugin = opener() if _dlq_path(data_dir).exists() else opener
            daemon = WatchDaemon(plex, plugin, watch_settings, data_dir=data_dir)
            if on_ready is not None:
                on_ready(daemon)
            daemon.run(stop)  # type: ignore[arg-type]  # duck-typed threading.Event
        if received:
            logger.info("stopped by %s", signal.Signals(received[0]).name)
    finally:
        _restore_handlers(previous)
        stop.close()
        for queue in queues:
            queue.close()
        plex.close()
        stash.close()
    return 0


def _watch_settings(args: argparse.Namespace) -> "WatchSettings":
    """The daemon's timing from the flags.

    Raises:
        UsageError: A setting is out of range (the message names it).
    """
    from ..worker.watch import WatchSettings

    probe_timeout = args.probe_timeout if args.probe_timeout is not None else min(3.0, args.interval)
    try:
        return WatchSettings(
            interval=args.interval,
            fail_threshold=args.fail_threshold,
            recover_threshold=args.recover_threshold,
            probe_timeout=probe_timeout,
            retry_interval=args.retry_interval,
            token_hint=TOKEN_HINT,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _dlq_path(data_dir: Path) -> Path:
    from ..sync_queue.dlq import DLQ_FILE_NAME

    return data_dir / DLQ_FILE_NAME


def _plugin_opener(
    settings: Settings, data_dir: Path, plex: Any, stash: Any, queues: list[Any], *, lock_wait: float
) -> Any:
    """A function that opens the DLQ, the job queue and the plugin, refusing while ``dlq.db`` is missing.

    The plugin waits at most ``lock_wait`` (a tick) for another recovery's lock: a window it
    cannot run then stays pending and is retried on a later tick.
    """
    from ..plugin import RecoveryPlugin
    from ..sync_queue.dlq import DlqUnavailable

    def open_plugin() -> RecoveryPlugin:
        path = _dlq_path(data_dir)
        if not path.exists():
            raise DlqUnavailable(f"there is no {path.name} in {data_dir} yet (PlexSync creates it)")
        dlq = open_dlq(data_dir)
        queue = open_job_queue(data_dir)
        queues.append(queue)
        return RecoveryPlugin(
            dlq, queue, stash, plex, data_dir, include_optional=settings.include_optional,
            outage_casualties=settings.outage_casualties, lock_wait=lock_wait,
        )

    return open_plugin
