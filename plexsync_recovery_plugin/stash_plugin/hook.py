"""The hook: on each scene create/update Stash runs the plugin; recover an outage that ended since last time.

The check costs almost nothing when nothing is new, because Stash runs it on every scene
update: a ``stat`` of PlexSync's ``outage_history.json`` compared with the marker the last
check left (``HookMarker``, a small table in the plugin's ``recovery_state.db``), and, at
most once per ``RETRY_PENDING_SECONDS``, a look at the plugin's pending windows. No lock is
taken, no DLQ opened, neither Plex nor Stash asked, and nothing but the standard library is
imported on that path. Only when the history changed is the one source of outages asked
which outages are not handled yet (``outages.OutageSource``); only when one is (or a
pending window is due) are Stash's settings read and the recovery run.

A hook never fails the scene update that triggered it: every error is logged, and the
caller exits 0.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import STASH, ConfigurationError, explain
from ..state import STATE_FILE_NAME, connect_state_db

__all__ = ['HookMarker', 'Marker', 'HookCheck', 'RETRY_PENDING_SECONDS', 'check_for_work', 'run_hook']


# ==== hook marker ===============================================================================
# The Stash hook's "last checked" marker, a small table in the plugin's own ``recovery_state.db``.
#
# It remembers what the hook saw of PlexSync's ``outage_history.json`` (its stat signature)
# and when it last retried pending windows, so a scene update finds out that nothing is new
# from a ``stat`` and one small read. Which outages are handled is not kept here but per
# outage, by ``outages.OutageSource``: a "newest end seen" mark would hide a real
# outage that ends before one recorded while the clock ran ahead. Nothing of PlexSync's is
# written.

_KEY = "last_check"


@dataclass(frozen=True)
class Marker:
    """What the hook had seen at its last check.

    Attributes:
        history_signature: ``inode:mtime_ns:size`` of the history file, or None when it was absent.
        retried_at: When pending windows were last looked at for a retry (Unix seconds).
    """

    history_signature: str | None
    retried_at: float


class HookMarker:
    """Reads and writes the marker of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def read(self) -> Marker | None:
        """Return the marker, or None before the hook's first check (the state file is not created)."""
        if not (self.data_dir / STATE_FILE_NAME).exists():
            return None
        conn = connect_state_db(self.data_dir)
        try:
            row = conn.execute("SELECT value FROM stash_hook_marker WHERE key = ?", (_KEY,)).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            return Marker(data["history_signature"], float(data["retried_at"]))
        except (ValueError, KeyError, TypeError):  # unreadable: start again from a baseline
            return None

    def write(self, marker: Marker) -> None:
        """Replace the marker."""
        value = json.dumps(
            {
                "history_signature": marker.history_signature,
                "retried_at": marker.retried_at,
            }
        )
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO stash_hook_marker (key, value) VALUES (?, ?)", (_KEY, value))
        finally:
            conn.close()


# ==== hook ======================================================================================

logger = logging.getLogger(__name__)

#: Least seconds between two retries of pending windows from the hook (while Plex stays down,
#: a busy library would otherwise probe it on every scene update).
RETRY_PENDING_SECONDS = 60.0

_HISTORY_FILE_NAME = "outage_history.json"  # worker.outage_history.HISTORY_FILE_NAME, not imported: it loads blinker


@dataclass(frozen=True)
class HookCheck:
    """What the check found.

    Attributes:
        marker: The marker to leave for the next check.
        ended: Windows ``(start, end)`` of closed outages not handled yet, oldest first.
        retry_due: Pending windows exist and are due for a retry.
        first_check: No marker existed: the first start in this data directory may have to
            catch up (``_act`` reads the catch-up setting, takes the baseline, recovers what it left).
    """

    marker: Marker
    ended: list[tuple[float, float]] = field(default_factory=list)
    retry_due: bool = False
    first_check: bool = False


def _signature(path: Path) -> str | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"


def _unhandled(data_dir: Path) -> list[tuple[float, float]]:
    from ..outages import OutageSource

    unhandled = OutageSource(data_dir).unhandled()
    for window in unhandled:
        window.warn_if_clock_stepped()
    return [(window.start, window.end) for window in unhandled]


def _first_start_pending(data_dir: Path) -> bool | None:
    """On the hook's first check: None when an earlier start took the baseline, else whether there are outages to judge."""
    from ..outages import OutageSource

    source = OutageSource(data_dir)
    if source.baseline_taken():
        return None
    return bool(source.closed())


def _pending_exists(data_dir: Path) -> bool:
    from ..state import PendingWindows

    return bool(PendingWindows(data_dir).windows())


def check_for_work(data_dir: Path, now: float) -> HookCheck | None:
    """Return what is new since the last check, or None when nothing is (and nothing was written)."""
    signature = _signature(data_dir / _HISTORY_FILE_NAME)  # before reading: a write after it shows next time
    marker = HookMarker(data_dir).read()
    history_changed = marker is None or marker.history_signature != signature
    retry_time = marker is None or now - marker.retried_at >= RETRY_PENDING_SECONDS
    if not history_changed and not retry_time:
        return None
    retry_due = retry_time and _pending_exists(data_dir)
    if not history_changed and not retry_due:
        return None
    if marker is None:  # the first check: what to catch up is decided with the settings (``_act``)
        return HookCheck(Marker(signature, now), [], retry_due, first_check=True)
    ended = _unhandled(data_dir) if history_changed else []
    retried_at = now if ended or retry_due else marker.retried_at
    return HookCheck(Marker(signature, retried_at), ended, retry_due)


def run_hook(data_dir: Path | None, server: Any, now: float, on_secret: Callable[[str], None]) -> str:
    """Check and, if something is new, recover; return a one-line summary. Never raises.

    Args:
        data_dir: PlexSync's data directory, or None when it could not be found.
        server: Stash's ``ServerConnection`` from the plugin input.
        now: The current time (Unix seconds).
        on_secret: Told the Plex token once the settings are read.
    """
    try:
        if data_dir is None or not data_dir.is_dir():  # the caller says where it looked
            return "no PlexSync data directory"
        found = check_for_work(data_dir, now)
        if found is None:
            return "nothing new"
        try:
            return _act(data_dir, server, found, on_secret, now)
        finally:
            HookMarker(data_dir).write(found.marker)
    except ConfigurationError as error:  # a refused token or session: one line naming the setting
        if not error.logged:
            logger.error("automatic recovery cannot run: %s", explain(error, STASH))
        return "recovery could not run (see the log)"
    except Exception as error:  # a hook never fails the scene update
        logger.error("automatic recovery check failed: %s: %s", type(error).__name__, error)
        logger.debug("detail", exc_info=error)
        return "check failed (see the log)"


def _act(data_dir: Path, server: Any, found: HookCheck, on_secret: Callable[[str], None], now: float) -> str:
    from . import tasks

    ended = list(found.ended)
    first_start = False
    if found.first_check:
        logger.info("automatic recovery is watching %s from now on", data_dir)
        pending = _first_start_pending(data_dir)
        if pending is False:  # nothing is over yet: no setting to read
            tasks.first_start(data_dir, 0, now)
        first_start = pending is True
        if pending is None:  # another door started first: what it left unhandled is this hook's
            ended = _unhandled(data_dir)
    if not ended and not found.retry_due and not first_start:
        return "no outage ended since the last check"
    from ..state import HOOK_LOCK_WAIT

    try:
        context = tasks.open_context(data_dir, server, on_secret)
        context.lock_wait = HOOK_LOCK_WAIT  # Stash waits for the hook: a busy lock leaves the window pending
    except Exception as error:
        if first_start:  # the setting could not be read: the default catch-up, kept pending below
            from ..outages import CATCH_UP_DAYS

            tasks.first_start(data_dir, CATCH_UP_DAYS, now)
            ended = _unhandled(data_dir)
        for start, end in ended:  # retried once the settings or Stash are right again
            tasks.keep_pending(data_dir, start, end)  # notes the outage handled: the pending window has it
        reason = explain(error, STASH) if isinstance(error, ConfigurationError) else error
        logger.error("cannot recover now, the outage stays pending: %s", reason)
        return "recovery could not start (see the log)"
    try:
        if first_start:
            tasks.first_start(data_dir, context.settings.catch_up_days, now)
            ended = _unhandled(data_dir)
        for start, end in ended:
            logger.info("Plex outage %s ended: recovering its dead-lettered jobs", _window(start, end))
            runs = tasks.recover(context, start, end)  # the plugin notes the outage handled
            _log_runs(runs)
        if not ended and found.retry_due:
            _log_runs(tasks.retry_pending(context))
    finally:
        context.close()
    from ..engine import plural

    if ended:
        return f"{plural(len(ended), 'outage')} recovered"
    return "pending windows retried" if found.retry_due else "no outage ended since the last check"


def _log_runs(runs: Any) -> None:
    from ..engine import plural

    recovered = sum(result.recovered for result in runs.results)
    logger.info("automatic recovery: %s recovered in %s", plural(recovered, "job"), plural(len(runs.results), "run"))
    for start, end in runs.pending:
        logger.warning("outage window %s stays pending; it is retried later", _window(start, end))


def _window(start: float, end: float) -> str:
    from ..formatting import describe_window  # not on the quick path: only when an outage is recovered

    return describe_window(start, end)
