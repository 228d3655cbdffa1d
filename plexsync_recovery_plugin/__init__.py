"""plexsync_recovery_plugin: re-queues PlexSync's dead-lettered jobs when a Plex outage ends.

Connect a ``RecoveryPlugin`` and every ``outage_ended`` signal recovers the DLQ entries of
that outage; subscribe to ``recovery_completed`` to hear what happened.
"""

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
from .plugin import RecoveryPlugin
from .signals import outage_ended, outage_started, recovery_completed, recovery_failed
from .stash.connection import StashConnection, StashUnavailable
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

__all__ = [
    "DeadLetterQueue",
    "OPTIONAL_RETRY_ERROR_TYPES",
    "OutageHistory",
    "PERMANENT_ERROR_TYPES",
    "PlexAuthError",
    "PlexConnection",
    "PlexError",
    "PlexNotFound",
    "PlexPermanentError",
    "PlexPermissionError",
    "PlexServerDown",
    "PlexTemporaryError",
    "RecoveryPlugin",
    "RecoveryResult",
    "SAFE_RETRY_ERROR_TYPES",
    "StashConnection",
    "StashUnavailable",
    "check_plex_health",
    "enqueue",
    "get_error_types_for_recovery",
    "get_outage_dlq_entries",
    "get_queued_scene_ids",
    "open_queue",
    "outage_ended",
    "outage_started",
    "recover_outage_jobs",
    "recovery_completed",
    "recovery_failed",
]
