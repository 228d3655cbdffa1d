"""Recovering the DLQ entries of a Plex outage: the seed contract of PlexSync's recovery module.

Where PlexSync keeps its own ``sync_queue/dlq_recovery.py``, so a PlexSync developer finds it here.

Selection is conservative: only failures that an outage explains are retried (``selection``
says which, and keeps the seed's ``get_error_types_for_recovery`` and its lists). Recovery
passes three gates: Plex answers, the scene is not already covered by a job (or already
redriven), and the scene still exists in Stash. It never deletes or rewrites a DLQ row,
never queues an entry twice, and never runs code found in a pickle.

``recover_outage_jobs`` called as the seed calls it goes entry by entry through this
module's names ``check_plex_health``, ``get_queued_scene_ids``, ``get_acked_scene_times``
and ``enqueue`` (looked up at call time, so a test that patches them controls the
outcome). ``RecoveryPlugin`` passes faster collaborators explicitly
(``engine.default_collaborators``); both go through the one engine, ``engine.run_recovery``.
The names the seed exported (``RecoveryResult``, the error-type lists ...) are kept here for
code written against it; they are defined in ``engine``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..engine import (
    OPTIONAL_RETRY_ERROR_TYPES,
    OUTAGE_CASUALTY_ERROR_TYPE,
    PERMANENT_ERROR_TYPES,
    SAFE_RETRY_ERROR_TYPES,
    Collaborators,
    DryRunWriter,
    EntryOutcome,
    JobWriter,
    Observer,
    Outcome,
    PerJobWriter,
    RecoveryResult,
    get_error_types_for_recovery,
    is_outage_casualty,
    left_text,
    run_recovery,
)
from ..plex.health import check_plex_health
from ..stash.lookup import StashLookup
from ..state import recovery_lock
from .dlq import DeadLetterQueue
from .operations import QueueFile, QueueSnapshot, enqueue, get_acked_scene_times, get_queued_scene_ids

__all__ = [
    "SAFE_RETRY_ERROR_TYPES",
    "OPTIONAL_RETRY_ERROR_TYPES",
    "PERMANENT_ERROR_TYPES",
    "Collaborators",
    "EntryOutcome",
    "OUTAGE_CASUALTY_ERROR_TYPE",
    "Observer",
    "Outcome",
    "RecoveryResult",
    "get_error_types_for_recovery",
    "get_outage_dlq_entries",
    "is_outage_casualty",
    "left_text",
    "recover_outage_jobs",
    "seed_collaborators",
]


def get_outage_dlq_entries(
    dlq: DeadLetterQueue, start_time: float, end_time: float, error_types: Sequence[str]
) -> list[dict[str, Any]]:
    """Return the DLQ entries that failed inside an outage window, oldest first.

    Args:
        dlq: The dead-letter queue.
        start_time: Window start, Unix seconds, inclusive.
        end_time: Window end, Unix seconds, inclusive.
        error_types: ``error_type`` names to select; empty selects nothing.

    Returns:
        Dicts with ``id, scene_id, error_type, error_message, failed_at, job_data``
        (and ``job_data_size``); ``[]`` when nothing matches.
    """
    return list(dlq.window(start_time, end_time, error_types))


def seed_collaborators(queue_path: str | Path, queue: Any, stash: Any, *, dry_run: bool = False) -> Collaborators:
    """The seed's path: this module's patchable names for the gates and one ``enqueue`` per entry."""
    queue_file = QueueFile(queue_path)

    def queue_state(since: float | None) -> QueueSnapshot:
        snapshot = QueueSnapshot(live=set(get_queued_scene_ids(queue_path)), last_row_id=queue_file.high_water())
        snapshot.acked.update(get_acked_scene_times(queue_path, since))
        return snapshot

    def enqueue_by_current_name(target: Any, scene_id: int, update_type: str, data: Any) -> Any:
        return enqueue(target, scene_id, update_type, data)

    writer: JobWriter = DryRunWriter() if dry_run else PerJobWriter(queue, enqueue_by_current_name, queue_file, "")
    return Collaborators(
        plex_health=lambda client: check_plex_health(client),
        queue_state=queue_state,
        lookup=StashLookup(stash, by_range=False),  # as the seed contract asks: find_scene(id) per scene
        writer=writer,
        queue_file=queue_file,
    )


def recover_outage_jobs(
    dlq_entries: Iterable[Mapping[str, Any]],
    queue: Any,
    stash: Any,
    plex_client: Any,
    data_dir: str | Path,
    *,
    collaborators: Collaborators | None = None,
    dry_run: bool = False,
    again: bool = False,
    observer: Observer | None = None,
) -> RecoveryResult:
    """Re-queue DLQ entries that pass the three gates.

    A real run holds the data directory's recovery lock, so runs never overlap (threads or
    processes); a dry run takes no lock and writes nothing.

    Args:
        dlq_entries: Entries as returned by ``get_outage_dlq_entries`` (or a ``DlqWindow``).
        queue: PlexSync's ``SQLiteAckQueue`` (or any object ``enqueue`` accepts, with ``.path``).
        stash: Anything with ``find_scene(id)`` (a ``stashapi`` client, a ``StashConnection``).
        plex_client: A ``PlexServer``, PlexSync's client wrapper, or anything ``check_plex_health`` accepts.
        data_dir: The PlexSync data directory (holds the recovery lock).
        collaborators: The gates and the writer; the seed's per-entry ones when omitted.
        dry_run: Decide everything but write nothing; ``recovered`` then counts what would be.
        again: Ignore the ledger: redrive entries an earlier run redrove, if no job covers them.
        observer: Told ``(entry, outcome, detail)`` for every entry.

    Returns:
        The counts of what happened to every entry.
    """
    if collaborators is None:
        collaborators = seed_collaborators(queue.path, queue, stash, dry_run=dry_run)
    if dry_run:
        return run_recovery(dlq_entries, plex_client, collaborators, again=again, dry_run=True, observer=observer)
    with recovery_lock(data_dir):
        return run_recovery(dlq_entries, plex_client, collaborators, again=again, observer=observer)
