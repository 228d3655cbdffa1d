"""A job that passed every gate, as the writers stage it for the queue, and the ledger records a chunk writes."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

from .ledger import DONE

__all__ = ["PendingJob", "StagedJob", "chunk_records"]


class PendingJob(NamedTuple):
    """A job that passed every gate, with the entry it comes from."""

    entry: Mapping[str, Any]
    identity: tuple[int, str]
    failed_at: float | None
    scene_id: int
    update_type: str
    data: Any
    #: Later entries of the same chunk for the same scene: they share this job's fate.
    followers: tuple[tuple[Mapping[str, Any], tuple[int, str]], ...] = ()


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
    covered: Sequence[tuple[tuple[int, str], int]],
    fresh: dict[int, tuple[int, int]],
    earlier: Mapping[int, tuple[int, int]],
    run_id: str,
    now: float,
) -> list[tuple[Any, ...]]:
    """The chunk's ledger records, as rows in ``LedgerRecord``'s field order: each entry points at its scene's job of this run, if any.

    ``fresh`` holds the jobs this chunk wrote, ``earlier`` those of earlier chunks (by scene);
    a job found covered inside the transaction points at this run's job of its scene too, if any.
    Plain tuples, not ``LedgerRecord``s: they are built while PlexSync's queue is locked.
    """

    def pointer(scene_id: int) -> tuple[int | None, int | None]:
        return fresh.get(scene_id) or earlier.get(scene_id) or (None, None)

    entries = [(identity, job.scene_id) for job in jobs for identity in (job.identity, *job.followers)]
    entries.extend(covered)
    return [(*identity, scene_id, *pointer(scene_id), run_id, now, DONE, None) for identity, scene_id in entries]
