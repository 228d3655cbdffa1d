"""The gates of one recovery run, chunk by chunk: what ``dlq_recovery.run_recovery`` drives.

For each chunk it decodes every entry once, settles what the ledger and the queue already
cover (gate 2), asks Stash once for the rest (gate 3), hands the survivors to the job
writer, and counts every entry's outcome, the same for the later entries of a scene as for
the first. The collaborators (gates and writer) are passed in, never detected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..stash.lookup import SceneLookup, SceneStatus
from .dlq_entry import CorruptEntryError, decode_entry_job, failed_at_seconds
from .job_writers import JobWriter, PendingJob, WriteOutcome
from .ledger import CLAIMED, LedgerRecord, entry_identity
from .queue_file import QueueFile, QueueFileError
from .queue_snapshot import QueueSnapshot
from .recovery_result import Outcome, RecoveryResult, RecoveryTally

__all__ = ["ChunkRun", "Collaborators"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collaborators:
    """How a run asks its gates and where it writes: passed in, never detected.

    Attributes:
        plex_health: ``plex_health(plex_client) -> (healthy, latency_ms)``.
        queue_state: ``queue_state(since) -> QueueSnapshot``: live jobs, and acked jobs
            enqueued at or after ``since`` (Unix seconds; None for all).
        lookup: Which scenes still exist in Stash.
        writer: Where accepted jobs go.
        queue_file: The queue file's owner (its ledger).
    """

    plex_health: Callable[[Any], tuple[bool, float]]
    queue_state: Callable[[float | None], QueueSnapshot]
    lookup: SceneLookup
    writer: JobWriter
    queue_file: QueueFile



class ChunkRun:
    """One run's state: the tally, the queue snapshot, and the chunk-by-chunk gates."""

    def __init__(self, collaborators: Collaborators, tally: RecoveryTally, again: bool) -> None:
        self.c = collaborators
        self.tally = tally
        self.again = again
        self.snapshot = QueueSnapshot()
        collaborators.writer.run_id = tally.run_id

    def plex_down(self, entries: Iterable[Mapping[str, Any]]) -> RecoveryResult:
        """Gate 1 failed: every entry waits for a later run."""
        for entry in entries:
            self.tally.seen += 1
            self.tally.count(entry, Outcome.PLEX_DOWN, "Plex did not answer its health check")
        self.tally.deferred = True
        logger.warning("Plex is not healthy: %d DLQ entries left for a later run", self.tally.seen)
        return self.tally.freeze()

    def screen(self, chunk: list[Mapping[str, Any]]) -> dict[int, PendingJob]:
        """Gate 2 for one chunk: return one job per scene that Stash must be asked about."""
        self.tally.seen += len(chunk)
        return self._screen(chunk)

    def finish(self, leaders: dict[int, PendingJob], statuses: Mapping[int, SceneStatus]) -> None:
        """Gate 3 with Stash's answer for the chunk's scenes, then one write."""
        for scene_id, job in leaders.items():
            status = statuses.get(scene_id, SceneStatus.ERROR)
            if status is SceneStatus.PRESENT:
                self.c.writer.add(job)
            elif status is SceneStatus.MISSING:
                self._settle(WriteOutcome(job, Outcome.SCENE_MISSING, f"scene {scene_id} no longer exists in Stash"))
            else:
                self._settle(WriteOutcome(job, Outcome.STASH_ERROR, "Stash could not answer; retried later"))
        for outcome in self.c.writer.flush(self.snapshot):
            self._settle(outcome)

    def _screen(self, chunk: list[Mapping[str, Any]]) -> dict[int, PendingJob]:
        """Decode each entry once and apply gate 2; return one job per scene still to be asked about.

        A scene's entries of the chunk are grouped, and the newest (by failure time, then DLQ
        id) leads: its job is the one re-queued, the others share its fate. If an acked job
        covers the newest entry it covers the older ones too.
        """
        decoded = [job for job in map(self._decode, chunk) if job is not None]
        records = {} if self.again else self.c.queue_file.ledger_records([(job.scene_id, job.identity) for job in decoded])
        groups: dict[int, list[PendingJob]] = {}
        for job in decoded:
            record = records.get(job.identity)
            if record is not None and self._isolated(job.entry, lambda: self._redriven(job.entry, record, job.scene_id)):
                continue
            groups.setdefault(job.scene_id, []).append(job)
        leaders: dict[int, PendingJob] = {}
        for scene_id, jobs in groups.items():
            jobs.sort(key=_newest_first)
            leader = jobs[0]
            reason = self.snapshot.covering_reason(scene_id, leader.failed_at)
            if reason is not None:
                for job in jobs:
                    self.c.writer.add_covered(job.identity, scene_id)
                    self.tally.count(job.entry, Outcome.ALREADY_QUEUED, reason, scene_id)
                continue
            leaders[scene_id] = leader._replace(followers=tuple((job.entry, job.identity) for job in jobs[1:]))
        return leaders

    def _isolated(self, entry: Mapping[str, Any], check: Callable[[], bool]) -> bool:
        """``check()`` for one entry; an unexpected error fails that entry alone (True: settled)."""
        try:
            return check()
        except QueueFileError:
            raise
        except Exception as error:
            self._fail(entry, error)
            return True

    def _fail(self, entry: Mapping[str, Any], error: BaseException) -> None:
        """Count one entry as failed for an error of its own, logged with its DLQ id."""
        logger.warning("DLQ entry %s failed and was not recovered: %s: %s", entry.get("id"), type(error).__name__, error)
        self.tally.count(entry, Outcome.FAILED, f"{type(error).__name__}: {error}")

    def _decode(self, entry: Mapping[str, Any]) -> PendingJob | None:
        """The entry as a job to recover, or None when it is corrupt (counted as failed here)."""
        try:
            decoded = decode_entry_job(entry)
            return PendingJob(entry, entry_identity(entry), failed_at_seconds(entry.get("failed_at")), decoded.scene_id,
                              decoded.update_type, decoded.data)
        except CorruptEntryError as error:
            logger.warning("DLQ entry %s is corrupt and was not recovered: %s", entry.get("id"), error)
            self.tally.count(entry, Outcome.FAILED, str(error))
        except Exception as error:  # anything else wrong with this one entry is its own failure
            self._fail(entry, error)
        return None

    def _redriven(self, entry: Mapping[str, Any], record: LedgerRecord, scene_id: int) -> bool:
        """Whether the ledger settles the entry (counted here); False lets it through the gates."""
        if record.state != CLAIMED:
            detail = f"redriven by an earlier recovery (run {record.run_id})"
            self.tally.count(entry, Outcome.ALREADY_QUEUED, detail, scene_id)
            return True
        verdict = self.c.queue_file.claim_verdict(record)
        if verdict == "absent":
            return False
        if verdict == "queued":
            self.c.writer.add_covered((record.dlq_id, record.failed_at), record.scene_id)
            detail = "the job of an interrupted redrive is in the queue"
        else:
            logger.warning(
                "DLQ entry %s: an interrupted recovery claimed it and its job may already have run;"
                " not sent again (recover --again sends it)",
                record.dlq_id,
            )
            detail = "claimed by an interrupted recovery; its job may have run (use --again to send it)"
        self.tally.count(entry, Outcome.ALREADY_QUEUED, detail, scene_id)
        return True

    def _settle(self, outcome: WriteOutcome) -> None:
        """Count a job's outcome, and the same fate for the later entries of its scene."""
        job = outcome.job
        self.tally.count(job.entry, outcome.outcome, outcome.detail, job.scene_id)
        if outcome.defer:
            self.tally.deferred = True
        for entry, _ in job.followers:
            if outcome.outcome is Outcome.RECOVERED:
                detail = f"scene {job.scene_id} is queued by an earlier entry of this run"
                self.tally.count(entry, Outcome.ALREADY_QUEUED, detail, job.scene_id)
            else:
                self.tally.count(entry, outcome.outcome, outcome.detail, job.scene_id)


def _newest_first(job: PendingJob) -> tuple[float, int]:
    """Sort key: the newest failure first (an unknown time last), then the higher DLQ id."""
    moment = job.failed_at if job.failed_at is not None else float("-inf")
    dlq_id = job.identity[0] if isinstance(job.identity[0], int) else 0
    return (-moment, -dlq_id)
