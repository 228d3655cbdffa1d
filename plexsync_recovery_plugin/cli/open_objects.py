"""Opening what the commands work on, from the settings: PlexSync's DLQ and queue, a checked Stash key and Plex token.

Each failure becomes one clear ``CliError`` that names the bad file or flag. The package's
heavier modules are imported only when a command opens something.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ..errors import CLI, PLEX_TOKEN, hint
from ..plex.health import PLEX_TOKEN_REJECTED, probe_plex, token_rejection
from .errors import CliError
from .settings import Settings

__all__ = ["TOKEN_HINT", "open_dlq", "open_job_queue", "refuse_rejected_plex_token", "require_stash_key_accepted"]


def require_stash_key_accepted(stash: Any) -> None:
    """Connect to Stash now, so that a rejected API key stops the command before any run (exit 2).

    A Stash that cannot be reached is left for the run to report (its entries are deferred).

    Raises:
        StashKeyRejected: Stash answered 401/403 (a ``ConfigurationError``: ``main`` names the
            key's flag and variable).
    """
    from ..stash.connection import StashKeyRejected, StashUnavailable

    try:
        stash.client()
    except StashKeyRejected:
        raise
    except StashUnavailable:
        pass


def open_dlq(data_dir: Path) -> Any:
    """``<data_dir>/dlq.db`` as a read-only ``DeadLetterQueue``.

    Opening touches nothing (the file is never created); a missing or unreadable file
    raises ``DlqUnavailable`` (a ``sqlite3.DatabaseError`` naming the file) on the first read.
    """
    from ..sync_queue.dlq import DeadLetterQueue

    return DeadLetterQueue(data_dir)


def open_job_queue(data_dir: Path) -> Any:
    """Open PlexSync's job queue in ``<data_dir>/queue``.

    Raises:
        CliError: The queue file is not a usable SQLite database, or cannot be opened.
    """
    from ..sync_queue.operations import QUEUE_DIR_NAME, QUEUE_FILE_NAME, open_queue

    path = data_dir / QUEUE_DIR_NAME / QUEUE_FILE_NAME
    try:
        return open_queue(data_dir)
    except sqlite3.DatabaseError as error:
        raise CliError(f"cannot use the queue {str(path)!r}: {error}") from None


#: Where the CLI takes the Plex token from.
TOKEN_HINT = hint(PLEX_TOKEN, CLI)


def refuse_rejected_plex_token(settings: Settings, timeout: float = 5.0) -> None:
    """Probe Plex once; a Plex that is down passes (recovery defers), a rejected token does not.

    Raises:
        ConfigurationError: Plex answered 401/403 to the configured token (or to none); ``main``
            prints it with ``TOKEN_HINT`` and exits 2.
    """
    plex = settings.plex_connection(timeout=timeout)
    try:
        probe = probe_plex(plex, timeout=timeout)
    finally:
        plex.close()
    if probe.state != PLEX_TOKEN_REJECTED:
        return
    raise token_rejection(plex)
