"""Where recovered jobs go: a ``JobWriter`` takes a chunk's jobs and reports each one's fate.

``BatchJobWriter`` writes a chunk to PlexSync's ``SQLiteAckQueue`` file in one transaction,
in exactly the rows ``put`` writes, deciding there whether a scene gained a job meanwhile.
``PerJobWriter`` goes through an ``enqueue`` function one job at a time (any queue object,
or the seed's patchable ``enqueue``): it claims the entry in the ledger first and marks it
done after, so a crash in between is repaired, never doubled, by the next run.
``DryRunWriter`` writes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, NamedTuple, Protocol

from persistqueue.serializers import pickle as queue_pickle

from .dlq_entry import MAX_SCENE_ID
from .ledger import CLAIMED, DONE, LedgerRecord
from .lock_budget import LockBudget
from .operations import make_job
from .queue_file import QueueFile, QueueFileError
from .staged_jobs import PendingJob, StagedJob
from .safe_pickle import DEFAULT_LIMITS
from .queue_snapshot import QueueSnapshot, read_scene_id
from .recovery_result import Outcome

__all__ = ["BatchJobWriter", "DryRunWriter", "JobWriter", "PendingJob", "PerJobWriter", "WriteOutcome", "encode_job"]

logger = logging.getLogger(__name__)


class WriteOutcome(NamedTuple):
    """What became of one job: recovered, already queued (covered meanwhile) or failed.

    ``defer`` marks a failure that a later run may not repeat (the queue was not writable),
    unlike a job that cannot be encoded at all.
    """

    job: PendingJob
    outcome: Outcome
    detail: str
    defer: bool = False


class JobWriter(Protocol):
    """Takes the jobs of one chunk, then writes them with ``flush``; ``run_id`` is set by the engine."""

    run_id: str

    def add(self, job: PendingJob) -> None:
        """Accept a job for the next ``flush``."""

    def add_covered(self, identity: tuple[int, str], scene_id: int) -> None:
        """Record, at the next ``flush``, that entry ``identity`` is covered by the scene's existing job."""

    def flush(self, snapshot: QueueSnapshot) -> list[WriteOutcome]:
        """Write what was accepted; return one outcome per accepted job, in order."""

    def chunk_rows(self) -> int | None:
        """How many entries the next chunk should hold at most to keep its write short; None: no limit."""

    def close(self) -> None:
        """Release what the writer holds."""


class _StagingWriter:
    """What every writer shares: it keeps the chunk's jobs and covered entries until ``flush``."""

    def __init__(self, run_id: str = "") -> None:
        self.run_id = run_id
        self._jobs: list[PendingJob] = []
        self._covered: list[tuple[tuple[int, str], int]] = []

    def add(self, job: PendingJob) -> None:
        """Keep the job for the next ``flush``."""
        self._jobs.append(job)

    def add_covered(self, identity: tuple[int, str], scene_id: int) -> None:
        """Keep, for the next ``flush``, that entry ``identity`` is covered by the scene's existing job."""
        self._covered.append((identity, scene_id))

    def _take(self) -> tuple[list[PendingJob], list[tuple[tuple[int, str], int]]]:
        jobs, covered = self._jobs, self._covered
        self._jobs, self._covered = [], []
        return jobs, covered

    def chunk_rows(self) -> int | None:
        """No limit of its own: the engine's usual chunk."""
        return None

    def close(self) -> None:
        """Nothing to release: each write opens and closes its own connection."""


class DryRunWriter(_StagingWriter):
    """Accepts every job and writes none."""

    def flush(self, snapshot: QueueSnapshot) -> list[WriteOutcome]:
        """Every job would be recovered, unless it could not be queued or an earlier one of the run queued its scene."""
        jobs, _ = self._take()  # covered entries: nothing is recorded
        outcomes = []
        for job in jobs:
            try:  # what a real run checks before writing
                encode_job(job)
            except Exception as error:
                outcomes.append(WriteOutcome(job, Outcome.FAILED, f"cannot be re-queued: {error}"))
                continue
            reason = snapshot.covering_reason(job.scene_id, job.failed_at)
            if reason is None:
                outcomes.append(WriteOutcome(job, Outcome.RECOVERED, f"scene {job.scene_id} passes every gate (dry run)"))
                snapshot.live.add(job.scene_id)
            else:
                outcomes.append(WriteOutcome(job, Outcome.ALREADY_QUEUED, reason))
        return outcomes


class BatchJobWriter(_StagingWriter):
    """One transaction per chunk on a ``SQLiteAckQueue``'s file: jobs, ledger records, dedup.

    Args:
        queue_file: The queue file's owner.
        run_id: The run's id, recorded in the ledger.
        on_written: Called with the number of jobs written after each commit (the factory
            uses it to wake a worker of the same process blocked in ``queue.get()``).
        budget: Learns how long a transaction holds the queue's write lock per entry.
    """

    def __init__(
        self,
        queue_file: QueueFile,
        run_id: str,
        on_written: Callable[[int], None] | None = None,
        budget: LockBudget | None = None,
    ) -> None:
        super().__init__(run_id)
        self.queue_file = queue_file
        self.on_written = on_written
        self.budget = budget or LockBudget()

    def chunk_rows(self) -> int | None:
        """As many entries as the budget says fit one short transaction (``lock_budget``)."""
        return self.budget.rows()

    def flush(self, snapshot: QueueSnapshot) -> list[WriteOutcome]:
        """Encode and check each job on its own (one that fails, fails alone), then write the chunk.

        If the chunk's transaction fails for a row's values (not for the file), nothing was
        written and each job is written in a transaction of its own: the one at fault fails alone.
        """
        jobs, covered = self._take()
        outcomes: list[WriteOutcome] = []
        staged: list[tuple[PendingJob, StagedJob]] = []
        for job in jobs:
            try:
                staged.append((job, encode_job(job)))
            except Exception as error:
                logger.warning("DLQ entry %s: its job cannot be re-queued: %s", job.identity[0], error)
                outcomes.append(WriteOutcome(job, Outcome.FAILED, f"cannot be re-queued: {error}"))
        if not staged and not covered:
            return outcomes
        try:
            reasons = self.queue_file.write_chunk([item for _, item in staged], covered, snapshot, self.run_id)
        except QueueFileError as error:
            logger.error("could not write %d recovered jobs: %s", len(staged), error)
            return outcomes + [WriteOutcome(job, Outcome.FAILED, f"could not queue: {error}", True) for job, _ in staged]
        except Exception as error:
            logger.warning("a row of a chunk of %d jobs could not be written (%s: %s); writing them one by one",
                           len(staged), type(error).__name__, error)
            return outcomes + self._write_alone(staged, covered, snapshot)
        self.budget.observe(sum(1 + len(item.followers) for _, item in staged) + len(covered),
                            sum(self.queue_file.last_lock_seconds))
        return outcomes + self._written(staged, reasons)

    def _written(self, staged: list[tuple[PendingJob, StagedJob]], reasons: list[str | None]) -> list[WriteOutcome]:
        """The outcomes of jobs the queue file took (reason None: written), after their commit."""
        outcomes = [WriteOutcome(job, Outcome.RECOVERED, f"scene {job.scene_id} re-queued") if reason is None
                    else WriteOutcome(job, Outcome.ALREADY_QUEUED, reason) for (job, _), reason in zip(staged, reasons)]
        self.queue_file.checkpoint()
        written = sum(1 for reason in reasons if reason is None)
        if written and self.on_written is not None:
            self.on_written(written)
        return outcomes

    def _write_alone(
        self, staged: list[tuple[PendingJob, StagedJob]], covered: list[tuple[tuple[int, str], int]], snapshot: QueueSnapshot
    ) -> list[WriteOutcome]:
        """Each job in a transaction of its own; once the file itself fails, the rest wait for a later run."""
        outcomes: list[WriteOutcome] = []
        broken: QueueFileError | None = None
        for job, item in staged:
            if broken is not None:
                outcomes.append(WriteOutcome(job, Outcome.FAILED, f"could not queue: {broken}", True))
                continue
            try:
                outcomes += self._written([(job, item)], self.queue_file.write_chunk([item], [], snapshot, self.run_id))
            except QueueFileError as error:
                logger.error("could not write the job of DLQ entry %s: %s", job.identity[0], error)
                broken = error
                outcomes.append(WriteOutcome(job, Outcome.FAILED, f"could not queue: {error}", True))
            except Exception as error:
                logger.warning("DLQ entry %s: its job could not be written: %s: %s", job.identity[0],
                               type(error).__name__, error)
                outcomes.append(WriteOutcome(job, Outcome.FAILED, f"could not queue: {type(error).__name__}: {error}"))
        if covered and broken is None:
            try:
                self.queue_file.write_chunk([], covered, snapshot, self.run_id)
            except Exception as error:  # their outcome stands; a later run checks them again
                logger.warning("could not record %d DLQ entries as covered: %s", len(covered), error)
        return outcomes


def encode_job(job: PendingJob) -> StagedJob:
    """The job as the queue row ``SQLiteAckQueue.put`` would write, checked before anything is written.

    Raises:
        ValueError: An id SQLite cannot hold, or a row the plugin could not read back as a
            job of the same scene (``queue_snapshot.read_scene_id``): this entry fails alone.
    """
    for name, value in (("scene_id", job.scene_id), ("DLQ id", job.identity[0])):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SCENE_ID:
            raise ValueError(f"{name} {value!r} is not an id SQLite can hold")
    queued = make_job(job.scene_id, job.update_type, job.data)
    blob = queue_pickle.dumps(queued)
    # A row of at most this many bytes has at most this many opcodes and holds values the DLQ
    # decoder accepted: it is within QUEUE_LIMITS (safe_pickle). A longer one is read back.
    if len(blob) > DEFAULT_LIMITS.max_opcodes:
        try:
            scene_id = read_scene_id(blob)
        except ValueError as error:
            raise ValueError(f"its re-queued row would not be readable as a job ({error})") from None
        if scene_id != job.scene_id:
            raise ValueError(f"its re-queued row reads as scene {scene_id}, not {job.scene_id}")
    followers = tuple(identity for _, identity in job.followers)
    return StagedJob(job.identity, job.failed_at, job.scene_id, queued["job_id"], blob, followers)


class PerJobWriter(_StagingWriter):
    """Claim, enqueue, mark done: one job at a time through ``enqueue_fn(queue, scene_id, update_type, data)``."""

    def __init__(self, queue: Any, enqueue_fn: Callable[..., Any], queue_file: QueueFile, run_id: str) -> None:
        super().__init__(run_id)
        self.queue = queue
        self.enqueue_fn = enqueue_fn
        self.queue_file = queue_file
        self._job_ids: dict[int, int | None] = {}  # scene id -> job id, of the jobs this run queued

    def flush(self, snapshot: QueueSnapshot) -> list[WriteOutcome]:
        """Write each job in turn, then the covered records."""
        jobs, covered = self._take()
        outcomes = [self._write_one(job, snapshot) for job in jobs]
        for identity, scene_id in covered:
            try:
                self._mark(identity, scene_id, self._job_ids.get(scene_id))
            except QueueFileError as error:
                logger.error("could not record DLQ entry %s as covered: %s", identity[0], error)
        return outcomes

    def _write_one(self, job: PendingJob, snapshot: QueueSnapshot) -> WriteOutcome:
        try:  # the checks of the batch writer: ids SQLite can hold, a row the plugin can read back
            encode_job(job)
        except Exception as error:
            logger.warning("DLQ entry %s: its job cannot be re-queued: %s", job.identity[0], error)
            return WriteOutcome(job, Outcome.FAILED, f"cannot be re-queued: {error}")
        try:
            self.queue_file.record(self._record(job.identity, job.scene_id, None, CLAIMED, self.queue_file.high_water()))
        except QueueFileError as error:
            return WriteOutcome(job, Outcome.FAILED, f"could not claim: {error}", True)
        self.queue_file.refresh(snapshot)
        reason = snapshot.covering_reason(job.scene_id, job.failed_at)
        if reason is not None:
            self._mark_all(job, None)
            return WriteOutcome(job, Outcome.ALREADY_QUEUED, reason)
        try:
            queued = self.enqueue_fn(self.queue, job.scene_id, job.update_type, job.data)
        except Exception as error:
            logger.error("DLQ entry %s: could not queue its job: %s", job.identity[0], error)
            self.queue_file.drop_claim(job.identity, job.scene_id)
            return WriteOutcome(job, Outcome.FAILED, f"could not queue: {error}", True)
        job_id = queued.get("job_id") if isinstance(queued, dict) else None
        self._job_ids[job.scene_id] = job_id
        snapshot.live.add(job.scene_id)
        try:
            self._mark_all(job, job_id)
        except QueueFileError as error:  # the claim stays: the next run finds the job queued after it
            logger.error("queued scene %s but could not mark DLQ entry %s done: %s", job.scene_id, job.identity[0], error)
        return WriteOutcome(job, Outcome.RECOVERED, f"scene {job.scene_id} re-queued")

    def _mark_all(self, job: PendingJob, job_id: int | None) -> None:
        for identity in (job.identity, *(identity for _, identity in job.followers)):
            self._mark(identity, job.scene_id, job_id)

    def _mark(self, identity: tuple[int, str], scene_id: int, job_id: int | None) -> None:
        self.queue_file.record(self._record(identity, scene_id, job_id, DONE, None))

    def _record(self, identity: tuple[int, str], scene_id: int, job_id: Any, state: str, seq: int | None) -> LedgerRecord:
        return LedgerRecord(*identity, scene_id, job_id, None, self.run_id, time.time(), state, seq)

