"""A chunk's jobs as the batch writer stages them, and the ledger records their transaction writes."""

from __future__ import annotations

from typing import NamedTuple, Sequence

from .ledger import DONE, LedgerRecord, unpack_job

__all__ = ["StagedJob", "chunk_records"]


class StagedJob(NamedTuple):
    """A job ready to be written: its entry, scene, pickled row data and job id."""

    identity: tuple[int, str]
    failed_at: float | None
    scene_id: int
    job_id: int
    blob: bytes
    #: Entries of the same chunk for the same scene, recorded as covered by this job.
    followers: tuple[tuple[int, str], ...] = ()


def chunk_records(
    jobs: Sequence[StagedJob],
    reasons: Sequence[str | None],
    covered: Sequence[tuple[tuple[int, str], int]],
    fresh: dict[int, tuple[int, int]],
    jobs_of_run: dict[int, int],
    run_id: str,
    now: float,
) -> list[LedgerRecord]:
    """The chunk's ledger records: each entry points at its scene's job of this run, if it has one."""

    def pointer(scene_id: int) -> tuple[int | None, int | None]:
        packed = jobs_of_run.get(scene_id)
        return fresh.get(scene_id) or (unpack_job(packed) if packed is not None else (None, None))

    records = [
        LedgerRecord(*identity, job.scene_id, *(pointer(job.scene_id) if reason is None else (None, None)),
                     run_id, now, DONE, None)
        for job, reason in zip(jobs, reasons)
        for identity in (job.identity, *job.followers)
    ]
    records.extend(LedgerRecord(*identity, scene, *pointer(scene), run_id, now, DONE, None) for identity, scene in covered)
    return records
