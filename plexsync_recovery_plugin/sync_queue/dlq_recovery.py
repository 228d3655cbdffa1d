"""Recovering the DLQ entries of a Plex outage: the seed contract of PlexSync's recovery module.

Selection is conservative: only error types that an outage explains are retried. Recovery
passes three gates: Plex answers, the scene is not already queued (or already redriven), and
the scene still exists in Stash. It never deletes or rewrites a DLQ row, never queues an
entry twice, and never runs code found in a pickle.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from persistqueue import SQLiteAckQueue

from ..plex.health import check_plex_health
from ..stash.lookup import SceneStatus, choose_scene_lookup
from . import operations
from .dlq import DeadLetterQueue
from .dlq_entry import CorruptEntryError, decode_entry_job, entry_scene_id
from .dlq_window import DlqWindow
from .job_sinks import AckQueueBatchSink, JobSink, PerJobSink
from .ledger import RecoveryLedger, entry_identity
from .operations import enqueue, get_queued_scene_ids
from .recovery_lock import recovery_lock

__all__ = [
    "SAFE_RETRY_ERROR_TYPES",
    "OPTIONAL_RETRY_ERROR_TYPES",
    "PERMANENT_ERROR_TYPES",
    "OUTCOMES",
    "Observer",
    "RECOVERY_CHUNK",
    "RecoveryResult",
    "get_error_types_for_recovery",
    "get_outage_dlq_entries",
    "recover_outage_jobs",
    "recover_outage_jobs_locked",
]

logger = logging.getLogger(__name__)

#: An outage explains these failures: retrying them after it is always safe.
SAFE_RETRY_ERROR_TYPES = ["PlexServerDown"]
#: Often outage-related, sometimes not (a 404 can be a scene Plex has not scanned yet): opt-in.
OPTIONAL_RETRY_ERROR_TYPES = ["PlexTemporaryError", "PlexNotFound"]
#: Retrying cannot help: never recovered.
PERMANENT_ERROR_TYPES = ["PlexPermanentError", "PlexAuthError", "PlexPermissionError"]

#: Entries handled per chunk: one Stash request and one queue transaction each.
RECOVERY_CHUNK = 1000

#: What can happen to an entry, as reported to an ``observer``.
OUTCOMES = ("recovered", "already_queued", "plex_down", "scene_missing", "stash_error", "failed")

#: ``observer(entry, outcome, detail)``: told the outcome of every entry.
Observer = Callable[[dict[str, Any], str, str], None]


@dataclass
class RecoveryResult:
    """What one recovery run did. The counts add up to ``total_dlq_entries``.

    Attributes:
        total_dlq_entries: Entries the run was given.
        recovered: Entries put back on the queue.
        skipped_already_queued: Entries whose scene was pending, in progress or recently
            completed in the queue, or that were already redriven by an earlier run.
        skipped_plex_down: Entries not tried because Plex failed its health check.
        skipped_scene_missing: Entries whose scene Stash no longer has.
        failed: Entries that are corrupt, or that could not be written to the queue.
        recovered_scene_ids: Scene ids re-queued, in order.
        skipped_stash_error: Entries left for later because Stash could not answer.
        deferred: True when part of the window must be retried later (Plex down, Stash
            error, queue write error); the plugin keeps such a window pending.
        plex_latency_ms: How long Plex took to answer the health check (0.0 if it did not).
        run_id: Identifies this run in the redrive ledger.
    """

    total_dlq_entries: int = 0
    recovered: int = 0
    skipped_already_queued: int = 0
    skipped_plex_down: int = 0
    skipped_scene_missing: int = 0
    failed: int = 0
    recovered_scene_ids: list[int] = field(default_factory=list)
    skipped_stash_error: int = 0
    deferred: bool = False
    plex_latency_ms: float = 0.0
    run_id: str = ""


def get_error_types_for_recovery(include_optional: bool = False) -> list[str]:
    """Return a new list of the error types to recover: the safe ones, plus the optional ones if asked."""
    types = list(SAFE_RETRY_ERROR_TYPES)
    if include_optional:
        types.extend(OPTIONAL_RETRY_ERROR_TYPES)
    return [name for name in types if name not in PERMANENT_ERROR_TYPES]


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
    return list(DlqWindow(dlq, start_time, end_time, error_types))


def recover_outage_jobs(
    dlq_entries: Iterable[dict[str, Any]],
    queue: Any,
    stash: Any,
    plex_client: Any,
    data_dir: str | Path,
    *,
    batched: bool = True,
    dry_run: bool = False,
    observer: Observer | None = None,
) -> RecoveryResult:
    """Re-queue DLQ entries that pass the three gates.

    Holds the data directory's recovery lock, so runs never overlap (threads or processes).

    Args:
        dlq_entries: Entries as returned by ``get_outage_dlq_entries`` (or a ``DlqWindow``).
        queue: PlexSync's ``SQLiteAckQueue`` (or any object ``enqueue`` accepts, with ``.path``).
        stash: A ``stashapi`` client, a ``StashConnection``, or anything with ``find_scene(id)``.
        plex_client: A ``PlexServer``, a ``PlexConnection``, or anything with ``query(path, timeout=)``.
        data_dir: The PlexSync data directory (holds the recovery lock).
        batched: Use one Stash request and one queue transaction per chunk where the objects
            allow it; False asks Stash and writes the queue once per entry (same results).
        dry_run: Decide everything but write nothing; ``recovered`` then counts what would be.
        observer: Called as ``observer(entry, outcome, detail)`` for every entry, where
            ``outcome`` is one of ``OUTCOMES`` and ``detail`` a short reason.

    Returns:
        The counts of what happened to every entry.
    """
    with recovery_lock(data_dir):
        return recover_outage_jobs_locked(
            dlq_entries, queue, stash, plex_client, batched=batched, dry_run=dry_run, observer=observer
        )


def recover_outage_jobs_locked(
    dlq_entries: Iterable[dict[str, Any]],
    queue: Any,
    stash: Any,
    plex_client: Any,
    *,
    batched: bool = True,
    dry_run: bool = False,
    observer: Observer | None = None,
) -> RecoveryResult:
    """``recover_outage_jobs`` for a caller that already holds the data directory's recovery lock."""
    entries = dlq_entries if isinstance(dlq_entries, Sequence) else list(dlq_entries)
    tally = _Tally(RecoveryResult(total_dlq_entries=len(entries), run_id=uuid.uuid4().hex[:12]), observer)
    result = tally.result
    if not entries:
        return result

    healthy, result.plex_latency_ms = check_plex_health(plex_client)
    if not healthy:
        result.deferred = True
        if observer is None:
            result.skipped_plex_down = result.total_dlq_entries
        else:
            for entry in entries:
                tally.count(entry, "plex_down", "Plex did not answer its health check")
        logger.warning("Plex is not healthy: %d DLQ entries left for a later run", result.total_dlq_entries)
        return result

    queued = set(get_queued_scene_ids(queue.path))
    ours: set[int] = set()  # scenes this run queued
    ledger = RecoveryLedger(queue.path)
    lookup = choose_scene_lookup(stash, batched=batched)
    sink: JobSink = _DryRunSink() if dry_run else _choose_sink(queue, ledger, result.run_id, batched=batched)
    seen = 0
    try:
        for chunk in _chunks(entries, RECOVERY_CHUNK):
            seen += len(chunk)
            _recover_chunk(chunk, queued, ours, ledger, lookup, sink, tally)
    finally:
        sink.close()
    # What was read, not what was counted before reading: PlexSync may dead-letter a job in
    # the window's last second in between, and the counts must add up to the total.
    result.total_dlq_entries = seen
    logger.info(
        "recovery %s%s: %d of %d DLQ entries re-queued (already queued %d, scene missing %d, stash error %d, failed %d)",
        result.run_id,
        " (dry run)" if dry_run else "",
        result.recovered,
        result.total_dlq_entries,
        result.skipped_already_queued,
        result.skipped_scene_missing,
        result.skipped_stash_error,
        result.failed,
    )
    return result


class _Tally:
    """Counts each entry's outcome into the result and tells the observer."""

    _FIELDS = {
        "already_queued": "skipped_already_queued",
        "plex_down": "skipped_plex_down",
        "scene_missing": "skipped_scene_missing",
        "stash_error": "skipped_stash_error",
        "failed": "failed",
    }

    def __init__(self, result: RecoveryResult, observer: Observer | None) -> None:
        self.result = result
        self.observer = observer

    def count(self, entry: dict[str, Any], outcome: str, detail: str = "", *, scene_id: int | None = None) -> None:
        if outcome == "recovered":
            self.result.recovered += 1
            self.result.recovered_scene_ids.append(scene_id if scene_id is not None else entry["scene_id"])
        else:
            field_name = self._FIELDS[outcome]
            setattr(self.result, field_name, getattr(self.result, field_name) + 1)
        if self.observer is not None:
            self.observer(entry, outcome, detail)


class _DryRunSink:
    """Accepts every job and writes none."""

    def add(self, identity: tuple[int, str], scene_id: int, update_type: str, data: Any) -> None:
        """Nothing is written."""

    def add_duplicate(self, identity: tuple[int, str], scene_id: int) -> None:
        """Nothing is written."""

    def flush(self) -> None:
        """Nothing is written."""

    def close(self) -> None:
        """Nothing to release."""


def _choose_sink(queue: Any, ledger: RecoveryLedger, run_id: str, *, batched: bool) -> JobSink:
    # A replaced ``enqueue`` (a test's patch, a worker's hook) is honoured: jobs then go through it.
    # The batch writes PlexSync's table (the default queue name), the one the dedup reads.
    if batched and isinstance(queue, SQLiteAckQueue) and queue.name == "default" and enqueue is operations.enqueue:
        return AckQueueBatchSink(queue, run_id)
    return PerJobSink(queue, _enqueue_by_current_name, ledger, run_id)


def _enqueue_by_current_name(queue: Any, scene_id: int, update_type: str, data: Any) -> Any:
    return enqueue(queue, scene_id, update_type, data)


def _chunks(entries: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _recover_chunk(
    chunk: list[dict[str, Any]],
    queued: set[int],
    ours: set[int],
    ledger: RecoveryLedger,
    lookup: Any,
    sink: JobSink,
    tally: _Tally,
) -> None:
    # Gate 2, first half: entries whose scene is queued or that an earlier run redrove.
    redriven = ledger.redriven(entry_identity(entry) for entry in chunk)
    candidates: list[tuple[dict[str, Any], int]] = []
    for entry in chunk:
        try:
            scene_id = entry_scene_id(entry)
            if scene_id is None:
                scene_id = decode_entry_job(entry).scene_id
        except CorruptEntryError as error:
            _count_corrupt(tally, entry, error)
            continue
        if entry_identity(entry) in redriven:
            tally.count(entry, "already_queued", "redriven by an earlier recovery")
        elif scene_id in ours:
            _count_covered(tally, sink, entry, scene_id, "is queued by an earlier entry of this run")
        elif scene_id in queued:
            _count_covered(tally, sink, entry, scene_id, "is already in the queue")
        else:
            candidates.append((entry, scene_id))

    # Gate 3: one question to Stash for the chunk's distinct scenes.
    statuses = lookup.statuses(list(dict.fromkeys(scene_id for _, scene_id in candidates))) if candidates else {}

    accepted: list[tuple[dict[str, Any], int]] = []
    for entry, scene_id in candidates:
        if scene_id in ours:  # gate 2 again: an earlier entry of this chunk took the scene
            _count_covered(tally, sink, entry, scene_id, "is queued by an earlier entry of this run")
            continue
        status = statuses.get(scene_id, SceneStatus.ERROR)
        if status is SceneStatus.MISSING:
            tally.count(entry, "scene_missing", f"scene {scene_id} no longer exists in Stash")
            continue
        if status is SceneStatus.ERROR:
            tally.result.deferred = True
            tally.count(entry, "stash_error", "Stash could not answer; retried later")
            continue
        try:
            job = decode_entry_job(entry)
        except CorruptEntryError as error:
            _count_corrupt(tally, entry, error)
            continue
        try:
            sink.add(entry_identity(entry), scene_id, job.update_type, job.data)
        except Exception as error:
            tally.result.deferred = True
            logger.error("DLQ entry %s: could not queue its job: %s", entry.get("id"), error)
            tally.count(entry, "failed", f"could not queue: {error}")
            continue
        ours.add(scene_id)
        accepted.append((entry, scene_id))

    try:
        sink.flush()
    except Exception as error:
        logger.error("could not write %d recovered jobs to the queue: %s", len(accepted), error)
        tally.result.deferred = True
        for entry, scene_id in accepted:
            ours.discard(scene_id)
            tally.count(entry, "failed", f"could not queue: {error}")
        return
    for entry, scene_id in accepted:
        tally.count(entry, "recovered", f"scene {scene_id} re-queued", scene_id=scene_id)


def _count_covered(tally: _Tally, sink: JobSink, entry: dict[str, Any], scene_id: int, why: str) -> None:
    """An entry whose scene already has a job: the ledger records it as covered by that job.

    Without the record, a retry of the window after the worker cleared that job would queue
    the scene once more.
    """
    sink.add_duplicate(entry_identity(entry), scene_id)
    tally.count(entry, "already_queued", f"scene {scene_id} {why}")


def _count_corrupt(tally: _Tally, entry: dict[str, Any], error: Exception) -> None:
    logger.warning("DLQ entry %s is corrupt and was not recovered: %s", entry.get("id"), error)
    tally.count(entry, "failed", str(error))
