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
outcome). ``RecoveryPlugin`` passes faster collaborators explicitly (see
``recovery_collaborators``); both go through the same engine, ``run_recovery``.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..plex.health import check_plex_health
from ..stash.lookup import PerSceneLookup, SceneStatus
from .dlq import DeadLetterQueue
from .dlq import failed_at_seconds
from .dlq import DlqWindow
from ..engine import DryRunWriter, JobWriter, PendingJob, PerJobWriter
from .operations import enqueue, get_acked_scene_times, get_queued_scene_ids
from .operations import QueueFile
from .operations import QueueSnapshot
from ..engine import ChunkRun, Collaborators
from ..state import recovery_lock
from ..engine import EntryOutcome, Observer, Outcome, RecoveryResult, RecoveryTally
from ..engine import (
    OPTIONAL_RETRY_ERROR_TYPES,
    OUTAGE_CASUALTY_ERROR_TYPE,
    PERMANENT_ERROR_TYPES,
    SAFE_RETRY_ERROR_TYPES,
    get_error_types_for_recovery,
    is_outage_casualty,
    left_text,
)

__all__ = [
    "SAFE_RETRY_ERROR_TYPES",
    "OPTIONAL_RETRY_ERROR_TYPES",
    "PERMANENT_ERROR_TYPES",
    "Collaborators",
    "EntryOutcome",
    "OUTAGE_CASUALTY_ERROR_TYPE",
    "Observer",
    "Outcome",
    "Progress",
    "RECOVERY_CHUNK",
    "RecoveryResult",
    "get_error_types_for_recovery",
    "get_outage_dlq_entries",
    "is_outage_casualty",
    "left_text",
    "recover_outage_jobs",
    "run_recovery",
    "seed_collaborators",
]

logger = logging.getLogger(__name__)

#: Entries handled per chunk at most: one Stash request and one queue transaction each (fewer when
#: the writer's lock budget says a chunk this size would hold the queue too long: ``lock_budget``).
RECOVERY_CHUNK = 1000
#: Chunks screened while waiting for Stash's answer about the oldest (bounds their memory: ~1 MB a chunk).
SCREEN_AHEAD = 6

#: ``progress(done, counts, last)``: entries decided so far, ``RecoveryResult.counts()`` so far, and
#: whether this is the run's last report (every entry decided).
Progress = Callable[[int, dict[str, int], bool], None]


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
    """The seed's per-entry path: this module's patchable names, one ``find_scene`` and one ``enqueue`` per entry."""
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
        lookup=PerSceneLookup(stash),
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


def run_recovery(
    entries: Iterable[Mapping[str, Any]],
    plex_client: Any,
    collaborators: Collaborators,
    *,
    since: float | None = None,
    again: bool = False,
    dry_run: bool = False,
    observer: Observer | None = None,
    progress: Progress | None = None,
) -> RecoveryResult:
    """The engine: the three gates over ``entries``, chunk by chunk; the caller holds the lock.

    ``since`` bounds which acked jobs are read (the window's start); when omitted it is
    the window's start of a ``DlqWindow``, or the earliest ``failed_at`` of a list.
    ``progress(done, counts, last)`` is told after each chunk.
    """
    run = ChunkRun(collaborators, RecoveryTally(uuid.uuid4().hex[:12], dry_run, observer), again)
    since = since if since is not None else _earliest(entries)
    pending = iter(entries)  # read once: a window is not counted first (that costs as much as reading it)
    first = next(pending, None)
    if first is None:
        return run.tally.freeze()
    remaining = itertools.chain([first], pending)
    healthy, run.tally.plex_latency_ms = collaborators.plex_health(plex_client)
    if not healthy:
        return run.plex_down(remaining)
    run.snapshot = collaborators.queue_state(since)
    try:
        with collaborators.queue_file.session():
            _pipeline(run, _chunks(remaining, lambda: _chunk_size(collaborators.writer)), progress)
    finally:
        collaborators.writer.close()
        getattr(pending, "close", lambda: None)()  # a window left half read closes its reader here, now
    result = run.tally.freeze()
    logger.info("recovery %s%s: %s", result.run_id, " (dry run)" if dry_run else "", result)
    return result


def _pipeline(run: ChunkRun, chunks: Iterator[list[Mapping[str, Any]]], progress: Progress | None) -> None:
    """Screen each chunk and ask Stash about it on a helper thread; write chunks in order as answers come.

    While Stash has not answered the oldest screened chunk, up to ``SCREEN_AHEAD`` chunks
    are screened ahead (read in failure order, a window of scattered ids makes the first
    answer fetch every block the window touches). A scene that an earlier chunk writes may be
    asked about needlessly; the write's own check inside its transaction still keeps it
    from being queued twice. Stash is the one helper thread: its time is spent waiting for
    answers. Reading the next DLQ page on a thread of its own was measured slower (20,000
    entries: 1.32-1.48 s against 1.13-1.41 s, interleaved), as the reader and the engine
    take turns at the interpreter's lock rather than run side by side.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plexsync-recovery-stash") as pool:
        waiting: deque[tuple[dict[int, PendingJob], Future[dict[int, SceneStatus]] | None]] = deque()
        for chunk in chunks:
            leaders = run.screen(chunk)
            waiting.append((leaders, pool.submit(run.c.lookup.statuses, list(leaders)) if leaders else None))
            # Keep the newest lookup overlapping a write; finish the oldest once it is answered or too far behind.
            while len(waiting) > 1 and (len(waiting) > SCREEN_AHEAD or _answered(waiting[0][1])):
                _finish(run, *waiting.popleft(), progress, last=False)
        while waiting:
            _finish(run, *waiting.popleft(), progress, last=not waiting)


def _answered(lookup: Future[dict[int, SceneStatus]] | None) -> bool:
    return lookup is None or lookup.done()


def _finish(
    run: ChunkRun,
    leaders: dict[int, PendingJob],
    lookup: Future[dict[int, SceneStatus]] | None,
    progress: Progress | None,
    *,
    last: bool,
) -> None:
    run.finish(leaders, lookup.result() if lookup is not None else {})
    if progress is not None:
        counts = run.tally.field_counts()  # freezing copies every recovered scene id: not once a chunk
        progress(sum(value for name, value in counts.items() if name != "total_dlq_entries"), counts, last)


def _earliest(entries: Iterable[Mapping[str, Any]]) -> float | None:
    start = getattr(entries, "start_time", None)
    if isinstance(start, (int, float)):
        return float(start)
    if not isinstance(entries, Sequence):
        return None
    times = [failed_at_seconds(entry.get("failed_at")) for entry in entries]
    return None if any(moment is None for moment in times) else min((t for t in times if t is not None), default=None)


def _chunk_size(writer: JobWriter) -> int:
    """``RECOVERY_CHUNK``, or fewer when the writer's lock budget says a chunk that size would hold the queue too long."""
    limit = writer.chunk_rows()
    return RECOVERY_CHUNK if limit is None else max(1, min(RECOVERY_CHUNK, limit))


def _chunks(entries: Iterable[Mapping[str, Any]], size: Callable[[], int]) -> Iterator[list[Mapping[str, Any]]]:
    """``entries`` in lists of ``size()`` entries, asked again for each list."""
    chunk: list[Mapping[str, Any]] = []
    limit = size()
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= limit:
            yield chunk
            chunk, limit = [], size()
    if chunk:
        yield chunk
