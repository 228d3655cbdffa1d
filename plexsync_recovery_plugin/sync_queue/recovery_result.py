"""What one recovery run did: the outcome of each entry and the frozen result subscribers get.

``RecoveryResult`` is immutable, so a receiver of ``recovery_completed`` cannot change what
the next receiver sees; ``RecoveryTally`` is the mutable counter the engine fills while it
runs and freezes at the end. ``counts()`` and ``str()`` are the one rendering every printer
(CLI, daemon log, Stash plugin) uses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = [
    "COUNT_FIELDS",
    "EntryOutcome",
    "ErrorTypeCounts",
    "OUTCOME_LABELS",
    "OUTCOME_WORDS",
    "Observer",
    "Outcome",
    "RecoveryResult",
    "RecoveryTally",
    "SceneIds",
    "outcome_word",
    "plural",
]


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
