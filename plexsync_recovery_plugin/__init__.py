"""plexsync_recovery_plugin: re-queues PlexSync's dead-lettered jobs when a Plex outage ends.

Connect a ``RecoveryPlugin`` and every ``outage_ended`` signal recovers the DLQ entries of
that outage; subscribe to ``recovery_completed`` to hear what happened.

The names below are imported on first use (PEP 562), so that importing one light module of
the package (the Stash plugin's hook check) does not load the Plex and Stash clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import EntryOutcome, Outcome
    from .errors import ConfigurationError
    from .plex.exceptions import (
        PlexAuthError,
        PlexError,
        PlexNotFound,
        PlexPermanentError,
        PlexPermissionError,
        PlexServerDown,
        PlexTemporaryError,
    )
    from .plex.health import PlexConnection, check_plex_health
    from .plugin import Preview, RecoveryPlugin, Run
    from .signals import outage_ended, outage_started, recovery_completed, recovery_failed, recovery_progress
    from .stash.connection import StashConnection, StashKeyRejected, StashUnavailable
    from .sync_queue.dlq import DeadLetterQueue
    from .sync_queue.dlq_recovery import (
        OPTIONAL_RETRY_ERROR_TYPES,
        PERMANENT_ERROR_TYPES,
        SAFE_RETRY_ERROR_TYPES,
        RecoveryResult,
        get_error_types_for_recovery,
        get_outage_dlq_entries,
        recover_outage_jobs,
    )
    from .sync_queue.operations import enqueue, get_queued_scene_ids, open_queue
    from .worker.outage_history import OutageHistory

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_EXPORTS = {
    **dict.fromkeys(
        (
            "PlexAuthError",
            "PlexError",
            "PlexNotFound",
            "PlexPermanentError",
            "PlexPermissionError",
            "PlexServerDown",
            "PlexTemporaryError",
        ),
        ".plex.exceptions",
    ),
    **dict.fromkeys(("PlexConnection", "check_plex_health"), ".plex.health"),
    **dict.fromkeys(("Preview", "RecoveryPlugin", "Run"), ".plugin"),
    **dict.fromkeys(
        ("outage_ended", "outage_started", "recovery_completed", "recovery_failed", "recovery_progress"), ".signals"
    ),
    **dict.fromkeys(("StashConnection", "StashKeyRejected", "StashUnavailable"), ".stash.connection"),
    **dict.fromkeys(("EntryOutcome", "Outcome"), ".sync_queue.recovery_result"),
    "DeadLetterQueue": ".sync_queue.dlq",
    **dict.fromkeys(
        (
            "OPTIONAL_RETRY_ERROR_TYPES",
            "PERMANENT_ERROR_TYPES",
            "SAFE_RETRY_ERROR_TYPES",
            "RecoveryResult",
            "get_error_types_for_recovery",
            "get_outage_dlq_entries",
            "recover_outage_jobs",
        ),
        ".sync_queue.dlq_recovery",
    ),
    **dict.fromkeys(("enqueue", "get_queued_scene_ids", "open_queue"), ".sync_queue.operations"),
    "OutageHistory": ".worker.outage_history",
    "ConfigurationError": ".errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access, and keep the value."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
