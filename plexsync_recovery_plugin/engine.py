"""The recovery engine: which entries a window selects, the three gates, chunks and writers, and the result.

Every door reaches this through ``RecoveryPlugin`` (or the seed's ``recover_outage_jobs``
adapter): entries are selected (``Selection``), decoded, passed through the gates (Plex
healthy, not already queued or recovered, scene still in Stash), and written in chunks by a
``JobWriter``. What happened to each entry is tallied in a ``RecoveryResult``. How the gates
are asked and jobs written are strategies (``Collaborators``), chosen in one factory,
``default_collaborators``.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
import re
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

from persistqueue import SQLiteAckQueue
from persistqueue.serializers import pickle as queue_pickle

from .decode import DEFAULT_LIMITS
from .plex.health import plex_gate
from .stash.lookup import (
    SceneLookup,
    SceneStatus,
    StashLookup,
)
from .sync_queue.dlq import (
    MAX_SCENE_ID,
    CorruptEntryError,
    DlqWindow,
    decode_entry_job,
    failed_at_seconds,
)
from .sync_queue.operations import (
    CLAIMED,
    DONE,
    LedgerRecord,
    LockBudget,
    PendingJob,
    QueueFile,
    QueueFileError,
    QueueSnapshot,
    StagedJob,
    enqueue,
    entry_identity,
    make_job,
    read_scene_id,
)

if TYPE_CHECKING:
    from .sync_queue.dlq import DeadLetterQueue

__all__ = ['COUNT_FIELDS', 'count_rows', 'EntryOutcome', 'ErrorTypeCounts', 'OUTCOME_LABELS', 'OUTCOME_WORDS', 'Observer', 'Outcome', 'RecoveryResult', 'RecoveryTally', 'SceneIds', 'outcome_word', 'plural', 'OPTIONAL_RETRY_ERROR_TYPES', 'OUTAGE_CASUALTY_ERROR_TYPE', 'PERMANENT_ERROR_TYPES', 'SAFE_RETRY_ERROR_TYPES', 'Selection', 'get_error_types_for_recovery', 'is_outage_casualty', 'left_text', 'BatchJobWriter', 'DryRunWriter', 'JobWriter', 'PendingJob', 'PerJobWriter', 'WriteOutcome', 'encode_job', 'ChunkRun', 'Collaborators', 'PLEXSYNC_QUEUE_NAME', 'default_collaborators']


# ==== recovery result ===========================================================================
# What one recovery run did: the outcome of each entry and the frozen result subscribers get.
#
# ``RecoveryResult`` is immutable, so a receiver of ``recovery_completed`` cannot change what
# the next receiver sees; ``RecoveryTally`` is the mutable counter the engine fills while it
# runs and freezes at the end. ``counts()`` and ``str()`` are the one rendering every printer
# (CLI, daemon log, Stash plugin) uses.

class Outcome(str, enum.Enum):
    """What happened to one DLQ entry (a ``str``, so ``outcome == "recovered"`` still holds)."""

    RECOVERED = "recovered"
    ALREADY_QUEUED = "already_queued"
    PLEX_DOWN = "plex_down"
    SCENE_MISSING = "scene_missing"
    STASH_ERROR = "stash_error"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EntryOutcome:
    """What a run did (or a dry run would do) with one DLQ entry."""

    dlq_id: Any
    scene_id: int | None
    error_type: Any
    failed_at: Any
    outcome: Outcome
    detail: str


#: How a person reads each outcome, in a run and in a dry run: the words every door prints
#: (CLI tables, the daemon's log, notifications, the Stash tasks and hook).
OUTCOME_WORDS: dict[Outcome, tuple[str, str]] = {
    Outcome.RECOVERED: ("recovered", "would recover"),
    Outcome.ALREADY_QUEUED: ("already queued", "already queued"),
    Outcome.SCENE_MISSING: ("scene missing", "scene missing"),
    Outcome.PLEX_DOWN: ("plex down", "plex down"),
    Outcome.STASH_ERROR: ("stash error", "stash error"),
    Outcome.FAILED: ("failed", "failed"),  # the entry's detail says why (unreadable, not written, ...)
}

#: The dry-run words by outcome value (a preview lists each entry with these).
OUTCOME_LABELS = {outcome.value: words[1] for outcome, words in OUTCOME_WORDS.items()}


def outcome_word(outcome: Outcome | str, dry_run: bool = False) -> str:
    """The word for ``outcome`` (an ``Outcome`` or its value) in a run, or in a dry run."""
    return OUTCOME_WORDS[Outcome(outcome)][1 if dry_run else 0]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 job``, ``2 jobs``, ``1 DLQ entry``, ``0 DLQ entries``: a count with its noun agreeing.

    Args:
        count: How many.
        noun: The singular.
        many: The plural, when adding ``s`` (``y`` -> ``ies`` after a consonant) is wrong.
    """
    if count == 1:
        return f"{count} {noun}"
    if many is None:
        many = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return f"{count} {many}"


#: ``observer(entry_outcome)``: told the outcome of every entry, in the order decided.
Observer = Callable[[EntryOutcome], None]

#: The result's counters, in the order they are printed, with the outcome each one counts.
COUNT_FIELDS: tuple[tuple[str, Outcome | None], ...] = (
    ("total_dlq_entries", None),
    ("recovered", Outcome.RECOVERED),
    ("skipped_already_queued", Outcome.ALREADY_QUEUED),
    ("skipped_scene_missing", Outcome.SCENE_MISSING),
    ("skipped_stash_error", Outcome.STASH_ERROR),
    ("skipped_plex_down", Outcome.PLEX_DOWN),
    ("failed", Outcome.FAILED),
)


def count_rows(result: RecoveryResult) -> list[tuple[str, int]]:
    """The result's counters (``result.counts()``, in its order) as labelled table rows.

    Each outcome is named with the words every door uses (``OUTCOME_WORDS``); the outcomes
    that keep the window pending say so.
    """
    deferring = (Outcome.PLEX_DOWN, Outcome.STASH_ERROR)
    labels = {
        name: "DLQ entries in window" if outcome is None
        else outcome_word(outcome, result.dry_run) + (" (deferred)" if outcome in deferring else "")
        for name, outcome in COUNT_FIELDS
    }
    return [(labels[name], value) for name, value in result.counts().items()]


class SceneIds(list[int]):
    """A list that cannot be changed: the seed contract's ``list[int]``, frozen like the rest of the result."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("RecoveryResult.recovered_scene_ids cannot be changed")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse  # type: ignore[assignment]
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))


class ErrorTypeCounts(dict[str, int]):
    """A dict of entries by ``error_type`` that cannot be changed, frozen like the rest of the result."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("RecoveryResult.left_by_error_type cannot be changed")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


@dataclass(frozen=True)
class RecoveryResult:
    """What one recovery run did. The outcome counts add up to ``total_dlq_entries``.

    Attributes:
        total_dlq_entries: Entries the run read.
        recovered: Entries put back on the queue (in a dry run: that would be).
        skipped_already_queued: Entries whose scene already has a live job, or a job enqueued
            after the entry failed, or that an earlier run already redrove.
        skipped_plex_down: Entries not tried because Plex failed its health check.
        skipped_scene_missing: Entries whose scene Stash no longer has.
        failed: Entries that are corrupt, or whose job could not be written to the queue.
        recovered_scene_ids: Scene ids re-queued, in order.
        skipped_stash_error: Entries left for later because Stash could not answer.
        deferred: True when part of the window must be retried later (Plex down or rejecting
            the token, Stash error, queue write error); the plugin keeps the window pending.
        plex_latency_ms: How long Plex took to answer the health check, rounded to 0.1 ms (0.0 if
            it did not).
        run_id: Identifies this run in the redrive ledger.
        dry_run: True when nothing was written.
        left_by_error_type: Entries of the window the run did not select, by ``error_type``
            (types not recovered by default, and ``PlexTemporaryError`` entries that do not
            read as the outage's); not part of ``total_dlq_entries``. Empty when unknown.
    """

    total_dlq_entries: int = 0
    recovered: int = 0
    skipped_already_queued: int = 0
    skipped_plex_down: int = 0
    skipped_scene_missing: int = 0
    failed: int = 0
    recovered_scene_ids: list[int] = field(default_factory=SceneIds)
    skipped_stash_error: int = 0
    deferred: bool = False
    plex_latency_ms: float = 0.0
    run_id: str = ""
    dry_run: bool = False
    left_by_error_type: dict[str, int] = field(default_factory=ErrorTypeCounts)

    def __post_init__(self) -> None:
        object.__setattr__(self, "recovered_scene_ids", SceneIds(self.recovered_scene_ids))
        object.__setattr__(self, "plex_latency_ms", round(float(self.plex_latency_ms), 1))  # one figure in every door
        object.__setattr__(self, "left_by_error_type", ErrorTypeCounts(self.left_by_error_type))

    def counts(self) -> dict[str, int]:
        """The counters by field name, in printing order."""
        return {name: int(getattr(self, name)) for name, _ in COUNT_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: every field, scene ids as a list."""
        return {**self.counts(), "recovered_scene_ids": list(self.recovered_scene_ids), "deferred": self.deferred,
                "plex_latency_ms": self.plex_latency_ms, "run_id": self.run_id, "dry_run": self.dry_run,
                "left_by_error_type": dict(self.left_by_error_type)}

    def __str__(self) -> str:
        words = {name: outcome_word(outcome, self.dry_run) for name, outcome in COUNT_FIELDS if outcome is not None}
        skipped = ", ".join(
            f"{words[name]} {value}" for name, value in self.counts().items() if name not in ("total_dlq_entries", "recovered")
        )
        tail = " - window kept pending for a retry" if self.deferred else ""
        total = plural(self.total_dlq_entries, "DLQ entry")
        return f"{words['recovered']} {self.recovered} of {total} ({skipped}){tail}"


@dataclass
class RecoveryTally:
    """The engine's running count: one ``count`` per entry, then ``freeze``."""

    run_id: str
    dry_run: bool = False
    observer: Observer | None = None
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    scene_ids: list[int] = field(default_factory=list)
    seen: int = 0
    deferred: bool = False
    plex_latency_ms: float = 0.0

    def count(self, entry: Mapping[str, Any], outcome: Outcome, detail: str = "", scene_id: int | None = None) -> None:
        """Record one entry's outcome (``scene_id`` as decoded, when known) and tell the observer."""
        self.counts[outcome] += 1
        if outcome is Outcome.RECOVERED and scene_id is not None:
            self.scene_ids.append(scene_id)
        if outcome in (Outcome.PLEX_DOWN, Outcome.STASH_ERROR):
            self.deferred = True
        if self.observer is not None:
            column = entry.get("scene_id")
            if scene_id is None and isinstance(column, int) and not isinstance(column, bool):
                scene_id = column
            self.observer(
                EntryOutcome(entry.get("id"), scene_id, entry.get("error_type"), entry.get("failed_at"), outcome, detail)
            )

    def field_counts(self) -> dict[str, int]:
        """The counts so far, as ``RecoveryResult.counts()`` names them (no copy of the scene ids)."""
        return {name: self.seen if outcome is None else self.counts[outcome] for name, outcome in COUNT_FIELDS}

    def freeze(self) -> RecoveryResult:
        """The immutable result; ``total_dlq_entries`` is what was read."""
        counts = self.counts
        return RecoveryResult(
            total_dlq_entries=self.seen,
            recovered=counts[Outcome.RECOVERED],
            skipped_already_queued=counts[Outcome.ALREADY_QUEUED],
            skipped_plex_down=counts[Outcome.PLEX_DOWN],
            skipped_scene_missing=counts[Outcome.SCENE_MISSING],
            failed=counts[Outcome.FAILED],
            recovered_scene_ids=self.scene_ids,
            skipped_stash_error=counts[Outcome.STASH_ERROR],
            deferred=self.deferred,
            plex_latency_ms=self.plex_latency_ms,
            run_id=self.run_id,
            dry_run=self.dry_run,
        )


# ==== selection =================================================================================
# Which DLQ entries a recovery selects, what an error type or message means, and what a run leaves.
#
# Selection is conservative: only failures an outage explains are retried. ``PlexServerDown``
# always; PlexSync's worker (Stash2Plex 1.6) never dead-letters that type, though: it puts
# the job back and lets its circuit breaker wait. What an outage does push into the DLQ are
# ``PlexTemporaryError`` entries worded as Plex timing out, dropping the connection or
# answering 5xx (its ``translate_plex_exception``); every recovery runs over an outage
# window, so those are recovered by default too (``outage_casualties``). ``PlexNotFound``,
# other temporary errors and the permanent types are not; ``include_optional`` adds the
# first two. ``dlq_recovery`` keeps the seed's names for all of this.

logger = logging.getLogger(__name__)

#: An outage explains these failures: retrying them after it is always safe.
SAFE_RETRY_ERROR_TYPES = ["PlexServerDown"]
#: Often outage-related, sometimes not (a 404 can be a scene Plex has not scanned yet): opt-in.
OPTIONAL_RETRY_ERROR_TYPES = ["PlexTemporaryError", "PlexNotFound"]
#: Retrying cannot help: never recovered.
PERMANENT_ERROR_TYPES = ["PlexPermanentError", "PlexAuthError", "PlexPermissionError"]
#: The optional type of which an outage's casualties are recovered by default (``is_outage_casualty``).
OUTAGE_CASUALTY_ERROR_TYPE = "PlexTemporaryError"

#: How PlexSync's worker words a ``PlexTemporaryError`` when Plex timed out, dropped or refused
#: the connection, or answered 5xx (``Timeout error: ...``, ``Connection error: ...``,
#: ``Server error (503): ...``); 429 (rate limiting) and anything else are Plex answering.
_OUTAGE_WORDING = re.compile(r"\s*(?:timeout error|connection error|server error \(5\d\d\))\s*:", re.IGNORECASE)


def get_error_types_for_recovery(include_optional: bool = False) -> list[str]:
    """Return a new list of the error types to recover: the safe ones, plus the optional ones if asked."""
    types = list(SAFE_RETRY_ERROR_TYPES)
    if include_optional:
        types.extend(OPTIONAL_RETRY_ERROR_TYPES)
    return [name for name in types if name not in PERMANENT_ERROR_TYPES]


def is_outage_casualty(error_type: Any, error_message: Any) -> bool:
    """Whether an entry failed because Plex was down: the one reading of what an error means.

    ``PlexServerDown`` always; a ``PlexTemporaryError`` whose stored message shows Plex
    unreachable, timing out or answering 5xx (a ``PlexServerDown`` in all but name); nothing else.
    """
    if error_type in SAFE_RETRY_ERROR_TYPES:
        return True
    return (error_type == OUTAGE_CASUALTY_ERROR_TYPE and isinstance(error_message, str)
            and _OUTAGE_WORDING.match(error_message) is not None)


def left_text(left: Mapping[str, int], include_optional: bool) -> str:
    """One line on what a run left in its window, by type, and how to include it ("" when nothing)."""
    if not left:
        return ""
    counted = ", ".join(f"{count} {name}" for name, count in sorted(left.items()))
    optional = [name for name in OPTIONAL_RETRY_ERROR_TYPES if name in left]
    if optional and not include_optional:
        hint = f"--include-optional recovers the {' and '.join(optional)} entries"
    else:
        hint = "no option recovers these types"
    return f"left {counted} in this window; {hint}"


@dataclass(frozen=True)
class Selection:
    """What a recovery reads from an outage window.

    Attributes:
        include_optional: Also every ``PlexTemporaryError`` and ``PlexNotFound`` entry.
        outage_casualties: Also the ``PlexTemporaryError`` entries ``is_outage_casualty`` reads
            as the outage's (on by default; ``include_optional`` takes them all anyway).
    """

    include_optional: bool = False
    outage_casualties: bool = True

    @property
    def _casualties_only(self) -> bool:
        """Whether ``PlexTemporaryError`` entries are selected by their message (not all, not none)."""
        return self.outage_casualties and not self.include_optional

    @property
    def error_types(self) -> list[str]:
        """The ``error_type`` names read: ``get_error_types_for_recovery``'s, and the casualties' type."""
        types = get_error_types_for_recovery(self.include_optional)
        if self._casualties_only and OUTAGE_CASUALTY_ERROR_TYPE not in types:
            types.append(OUTAGE_CASUALTY_ERROR_TYPE)
        return types

    def describe(self) -> str:
        """The selection in words, for "nothing to do" lines: ``PlexServerDown or outage PlexTemporaryError``."""
        names = get_error_types_for_recovery(self.include_optional)
        if self._casualties_only:
            names.append(f"outage {OUTAGE_CASUALTY_ERROR_TYPE}")
        return " or ".join(names)

    @property
    def by_message(self) -> dict[str, Callable[[Any], bool]]:
        """Error type -> which of its entries are read, by message (``is_outage_casualty``)."""
        if not self._casualties_only:
            return {}
        return {OUTAGE_CASUALTY_ERROR_TYPE: functools.partial(is_outage_casualty, OUTAGE_CASUALTY_ERROR_TYPE)}

    def window(self, dlq: "DeadLetterQueue", start: float, end: float) -> DlqWindow:
        """The selected entries of ``start..end`` in scene order (within a scene, newest first)."""
        return dlq.window(start, end, self.error_types, order="scene", by_message=self.by_message)

    def note_left(self, window: DlqWindow) -> dict[str, int]:
        """What ``window`` holds besides the selected entries, by error type, said in one log line; never raises.

        A warning when an option would recover some of it (the user may want it), else info.
        """
        try:
            left = window.left_by_error_type()
        except Exception as error:  # the run stands; only its note on the rest is missing
            logger.warning("could not count the entries left in the window: %s", error)
            return {}
        text = left_text(left, self.include_optional)
        if text:
            optional = not self.include_optional and any(name in left for name in OPTIONAL_RETRY_ERROR_TYPES)
            logger.log(logging.WARNING if optional else logging.INFO, "%s", text)
        return left


# ==== job writers ===============================================================================
# Where recovered jobs go: a ``JobWriter`` takes a chunk's jobs and reports each one's fate.
#
# ``BatchJobWriter`` writes a chunk to PlexSync's ``SQLiteAckQueue`` file in one transaction,
# in exactly the rows ``put`` writes, deciding there whether a scene gained a job meanwhile.
# ``PerJobWriter`` goes through an ``enqueue`` function one job at a time (any queue object,
# or the seed's patchable ``enqueue``): it claims the entry in the ledger first and marks it
# done after, so a crash in between is repaired, never doubled, by the next run.
# ``DryRunWriter`` writes nothing.

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
        """As many entries as the budget says fit one short transaction (``LockBudget``)."""
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
    if not _sqlite_id(job.scene_id):
        raise ValueError(f"scene_id {job.scene_id!r} is not an id SQLite can hold")
    if not _sqlite_id(job.identity[0]):
        raise ValueError(f"DLQ id {job.identity[0]!r} is not an id SQLite can hold")
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
    followers = tuple(identity for _, identity in job.followers) if job.followers else ()
    return StagedJob(job.identity, job.failed_at, job.scene_id, queued["job_id"], blob, followers)


def _sqlite_id(value: Any) -> bool:
    """Whether ``value`` is an id SQLite's INTEGER can hold (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SCENE_ID


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


# ==== recovery engine ===========================================================================
# The gates of one recovery run, chunk by chunk: what ``run_recovery`` drives.
#
# For each chunk it decodes every entry once, settles what the ledger and the queue already
# cover (gate 2), asks Stash once for the rest (gate 3), hands the survivors to the job
# writer, and counts every entry's outcome, the same for the later entries of a scene as for
# the first. The collaborators (gates and writer) are passed in, never detected.

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
            if len(jobs) > 1:  # most scenes fail once in a window: their job leads as it is, unsorted, uncopied
                jobs.sort(key=_newest_first)
            leader = jobs[0]
            reason = self.snapshot.covering_reason(scene_id, leader.failed_at)
            if reason is not None:
                for job in jobs:
                    self.c.writer.add_covered(job.identity, scene_id)
                    self.tally.count(job.entry, Outcome.ALREADY_QUEUED, reason, scene_id)
                continue
            if len(jobs) > 1:
                leader = leader._replace(followers=tuple((job.entry, job.identity) for job in jobs[1:]))
            leaders[scene_id] = leader
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


# ==== running a recovery ======================================================================
# The pipeline every door's recovery goes through: chunk the entries, screen each chunk, ask Stash
# about it on a helper thread, and write the chunks in order as the answers come.

#: Entries handled per chunk at most: one Stash request and one queue transaction each (fewer when
#: the writer's lock budget says a chunk this size would hold the queue too long: ``lock_budget``).
RECOVERY_CHUNK = 1000
#: Chunks screened while waiting for Stash's answer about the oldest (bounds their memory: ~1 MB a chunk).
SCREEN_AHEAD = 6

#: ``progress(done, counts, last)``: entries decided so far, ``RecoveryResult.counts()`` so far, and
#: whether this is the run's last report (every entry decided).
Progress = Callable[[int, dict[str, int], bool], None]


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


# ==== recovery collaborators ====================================================================
# The one place that picks how a recovery asks its gates and writes its jobs.
#
# ``RecoveryPlugin`` (and so the CLI, the daemon and the Stash plugin) uses
# ``default_collaborators``: a batched Stash lookup for a GraphQL client, and for PlexSync's
# own ``SQLiteAckQueue`` the one-transaction batch writer; anything else goes one job at a
# time through ``operations.enqueue``. ``bench`` and tests pass ``seed_collaborators``
# (per entry) or their own.

#: The name PlexSync gives its ``SQLiteAckQueue`` (table ``ack_queue_default``).
PLEXSYNC_QUEUE_NAME = "default"


def default_collaborators(queue_path: str | Path, queue: Any, stash: Any, *, dry_run: bool = False) -> Collaborators:
    """The fast collaborators for the queue at ``queue_path`` and ``stash``.

    A dry run gets a writer that writes nothing, and ``queue`` (the open queue object) may
    then be None.
    """
    queue_file = QueueFile(queue_path)
    writer: JobWriter
    if dry_run:
        writer = DryRunWriter()
    elif isinstance(queue, SQLiteAckQueue) and queue.name == PLEXSYNC_QUEUE_NAME:
        writer = BatchJobWriter(queue_file, "", on_written=lambda count: _wake(queue, count))
    else:
        writer = PerJobWriter(queue, enqueue, queue_file, "")
    return Collaborators(
        plex_health=plex_gate,  # a refused token stops the run (errors.ConfigurationError)
        queue_state=queue_file.snapshot,
        lookup=StashLookup(stash),
        writer=writer,
        queue_file=queue_file,
    )


def _wake(queue: SQLiteAckQueue, count: int) -> None:
    """Tell a worker of this process blocked in ``queue.get()`` that rows arrived.

    ``total`` and ``put_event`` are what ``SQLiteAckQueue.put`` updates; setup.cfg pins the
    persist-queue versions this was tested with, and a test fails if an upgrade changes them.
    """
    queue.total += count
    queue.put_event.set()
