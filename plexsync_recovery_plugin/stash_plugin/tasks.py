"""Every call the Stash plugin makes into the recovery library, in one place.

The Stash plugin is a front door like the command line: its tasks and its hook call these
thin functions, which call the same library the CLI calls (``RecoveryPlugin`` for real runs,
the engine's dry run for a preview, the outage history and its summary for the report).
Nothing here selects entries or decides an outcome itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigurationError
from ..plex.health import PlexConnection
from ..signals import recovery_progress
from ..plugin import Preview, RecoveryPlugin, Run
from ..stash.connection import StashConnection
from ..subscribers import load_subscribers
from ..sync_queue.dlq import DLQ_FILE_NAME, DeadLetterQueue
from ..sync_queue.dlq_recovery import Observer, RecoveryResult
from ..sync_queue.dlq import DlqWindow, whole_seconds
from ..state import PendingWindows
from ..state import CLI_LOCK_WAIT, recovery_lock
from ..engine import Selection
from ..worker.outage_summary import OutageSummary, summarize_outages
from ..worker.outage_source import OutageSource
from ..worker.outage_history import OutageHistory
from .plugin_settings import RecoverySettings, SettingsError, read_settings
from .stash_input import ServerConnection

__all__ = [
    "RecoveryContext",
    "RecoveryRuns",
    "keep_pending",
    "last_outage",
    "note_outage_handled",
    "open_context",
    "outage_report",
    "preview",
    "preview_size",
    "recover",
    "retry_pending",
]

#: Seconds Plex and Stash get to answer one request.
PLEX_TIMEOUT = 5.0
STASH_TIMEOUT = 10.0


@dataclass
class RecoveryContext:
    """The data directory and the (lazy) Plex and Stash clients a run uses; ``close`` when done.

    Attributes:
        data_dir: PlexSync's data directory.
        plex: A lazily connected Plex client.
        stash: A lazily connected Stash client (Stash's plugin session).
        settings: Where Plex is, and what to recover.
        lock_wait: Most seconds a run waits for another recovery's lock (the hook waits less).
    """

    data_dir: Path
    plex: Any
    stash: Any
    settings: RecoverySettings = field(repr=False)
    lock_wait: float = CLI_LOCK_WAIT

    def close(self) -> None:
        """Close both HTTP sessions."""
        self.plex.close()
        self.stash.close()


@dataclass(frozen=True)
class RecoveryRuns:
    """What a real run did.

    Attributes:
        results: Each completed run (a window, and any pending window retried with it).
        covering: The run that covered the asked window, or None when it failed.
        pending: The windows still waiting for a retry afterwards.
    """

    results: list[RecoveryResult]
    covering: RecoveryResult | None
    pending: list[tuple[float, float]]


def open_context(
    data_dir: Path, server: ServerConnection, on_secret: Callable[[str], None] = lambda secret: None
) -> RecoveryContext:
    """Read the settings from Stash (over its plugin session) and prepare the Plex client.

    Args:
        data_dir: PlexSync's data directory.
        server: Stash's connection details from the plugin input.
        on_secret: Told the Plex token before anything could log it.

    Raises:
        SettingsError: A setting is missing or unusable (the message names it).
        StashUnavailable: Stash could not be asked.
    """
    load_subscribers()  # once per process; PLEXSYNC_RECOVERY_NO_SUBSCRIBERS=1 turns it off
    stash = StashConnection(server.url, timeout=STASH_TIMEOUT, session_cookie=server.session_cookie)
    try:
        settings = read_settings(stash)
        on_secret(settings.plex_token)
        if settings.request_timeout != stash.deadline:  # reconnects with the configured deadline
            stash.close()
            stash.deadline = settings.request_timeout
        deadline = settings.request_timeout
        plex = PlexConnection(settings.plex_url, settings.plex_token, timeout=min(PLEX_TIMEOUT, deadline), deadline=deadline)
    except ValueError as error:
        stash.close()
        raise SettingsError(f"setting plex_url: {error}") from None
    except BaseException:
        stash.close()
        raise
    return RecoveryContext(data_dir, plex, stash, settings)


def last_outage(data_dir: Path) -> tuple[float, float] | None:
    """The newest closed outage (PlexSync's or the watch daemon's), as ``recover --last-outage`` picks it."""
    return OutageSource(data_dir).last_closed_window()


def _dry_run_window(context: RecoveryContext, start: float, end: float) -> DlqWindow | None:
    if not (context.data_dir / DLQ_FILE_NAME).exists():  # a preview never creates PlexSync's file
        return None
    selection = Selection(context.settings.include_optional, context.settings.outage_casualties)
    return selection.window(DeadLetterQueue(context.data_dir), *whole_seconds(start, end))


def preview_size(context: RecoveryContext, start: float, end: float) -> int:
    """How many DLQ entries a preview of the window will judge."""
    window = _dry_run_window(context, start, end)
    return 0 if window is None else len(window)


def preview(context: RecoveryContext, start: float, end: float, observer: Observer) -> Preview:
    """The CLI's ``recover --dry-run``: ask every gate for the window, write nothing; ``observer`` hears each entry."""
    if _dry_run_window(context, start, end) is None:
        return Preview(*whole_seconds(start, end), RecoveryResult(dry_run=True), ())
    plugin = _plugin(context)
    return plugin.preview(start, end, observer=observer)


def _plugin(context: RecoveryContext) -> RecoveryPlugin:
    """The recovery API over the context; its queue opens on the first real run (``close`` it)."""
    return RecoveryPlugin(DeadLetterQueue(context.data_dir), None, context.stash, context.plex, context.data_dir,
                          include_optional=context.settings.include_optional,
                          outage_casualties=context.settings.outage_casualties, lock_wait=context.lock_wait)


def _runs(
    context: RecoveryContext,
    action: Callable[[RecoveryPlugin], list[Run]],
    window: Any = None,
    progress: Callable[[float], None] | None = None,
) -> RecoveryRuns:
    plugin = _plugin(context)

    def on_progress(sender: Any, *, done: int, total: int, **kwargs: Any) -> None:
        if progress is not None and total:
            progress(min(done / total, 1.0))

    try:
        with recovery_progress.connected_to(on_progress, sender=plugin):
            runs = action(plugin)
        pending = plugin.pending_windows()
    finally:
        plugin.close()
    refused = next((run.error for run in runs if isinstance(run.error, ConfigurationError)), None)
    if refused is not None:
        raise refused  # the window stays pending; the task fails naming the setting to fix
    results = [run.result for run in runs if run.result is not None]
    covering = None
    if window is not None:
        low, high = whole_seconds(*window)
        covering = next((run.result for run in reversed(runs) if run.result is not None and run.start is not None
                         and run.end is not None and run.start <= low and high <= run.end), None)
    return RecoveryRuns(results, covering, pending)


def recover(
    context: RecoveryContext, start: float, end: float, progress: Callable[[float], None] | None = None
) -> RecoveryRuns:
    """Recover one window through ``RecoveryPlugin.recover`` (pending windows are retried with it).

    ``progress(fraction)`` is told after every chunk of each run (``recovery_progress``).

    Raises:
        ConfigurationError: Plex refused the token or Stash the session; the window stays pending.
    """
    return _runs(context, lambda plugin: plugin.recover(start, end), (start, end), progress)


def retry_pending(context: RecoveryContext, progress: Callable[[float], None] | None = None) -> RecoveryRuns:
    """Retry every pending window through ``RecoveryPlugin.retry_pending``; ``progress`` as for ``recover``."""
    return _runs(context, lambda plugin: plugin.retry_pending(), progress=progress)


def outage_report(data_dir: Path, now: float | None = None) -> tuple[list[dict[str, Any]], OutageSummary]:
    """PlexSync's outage history and its summary, as ``plexsync-recovery outages`` shows them."""
    records = OutageHistory(data_dir).get_history()
    return records, summarize_outages(records, time.time() if now is None else now)


def note_outage_handled(data_dir: Path, start: float, end: float) -> None:
    """Note the window handled for every outage it overlaps, where every door looks, so none recovers it twice."""
    OutageSource(data_dir).mark_handled(start, end)


def keep_pending(data_dir: Path, start: float, end: float) -> None:
    """Keep a window pending for a later retry when its recovery could not even start.

    The outages it overlaps are then handled: the pending window carries them, and every
    retry of pending windows recovers it.
    """
    with recovery_lock(data_dir):
        PendingWindows(data_dir).add(*whole_seconds(start, end))
    note_outage_handled(data_dir, start, end)
