"""Where a timed recovery spends its time, measured from outside the engine.

Why: "recovery took 1.8 s" does not say what to optimize next. Inside a bench worker
process only, :func:`timed_factory` wraps the collaborators a run is given (the Plex health
check, the queue snapshot, the Stash lookup, the job writer and the queue file's ledger read
and chunk transaction), :func:`time_window` the DLQ window it reads, and
:func:`time_decoding` the engine's ``decode_entry_job``, each with a stopwatch. The engine
itself is not edited; a collaborator it no longer uses simply reads 0.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from itertools import islice
from typing import Any, Callable, Iterator, TypeVar

__all__ = ["OVERLAPPING", "PHASES", "PhaseClock", "TimedEntries", "time_decoding", "time_window", "timed_factory"]

#: The run's phases, in the order a chunk meets them.
PHASES = ("plex_health", "queue_snapshot", "dlq_read", "decode", "ledger_read", "stash_lookup", "write")
#: Phases timed on the engine's Stash thread, while the main thread screens and writes other
#: chunks: they overlap the rest, so ``other`` does not subtract them (waiting for Stash is in ``other``).
OVERLAPPING = ("stash_lookup",)
#: Entries read from the window per stopwatch reading (one reading per entry would cost more than the read).
_READ_BATCH = 256

F = TypeVar("F", bound=Callable[..., Any])


class PhaseClock:
    """Seconds per phase, plus the chunk transactions (part of ``write``) and the longest one.

    Attributes:
        seconds: Seconds spent in each of :data:`PHASES`.
        transaction_seconds: Seconds the chunk transactions held the queue's write lock
            (``BEGIN IMMEDIATE`` returned to ``COMMIT`` done; within ``write``).
        transactions: How many chunk transactions ran.
        longest_transaction: The longest hold, seconds (what PlexSync's worker may wait).
        longest_lock_wait: The longest a transaction waited for the lock, seconds (PlexSync had it).
    """

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.transaction_seconds = 0.0
        self.transactions = 0
        self.longest_transaction = 0.0
        self.longest_lock_wait = 0.0

    def timed(self, phase: str, function: F) -> F:
        """``function`` with each call's duration added to ``phase``."""
        seconds = self.seconds

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - began

        return wrapper  # type: ignore[return-value]

    def timed_transaction(self, queue_file: Any) -> Callable[..., Any]:
        """``queue_file.write_chunk`` with the time each call held the write lock (and waited for it) counted."""
        write_chunk = queue_file.write_chunk

        @functools.wraps(write_chunk)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            reasons = write_chunk(*args, **kwargs)
            waited, held = queue_file.last_lock_seconds
            self.transaction_seconds += held
            self.transactions += 1
            self.longest_transaction = max(self.longest_transaction, held)
            self.longest_lock_wait = max(self.longest_lock_wait, waited)
            return reasons

        return wrapper

    def report(self, total: float) -> dict[str, Any]:
        """Plain figures: each phase's seconds, ``other`` (the rest of ``total`` beside the main thread's phases), the transactions."""
        phases = {name: round(value, 6) for name, value in self.seconds.items()}
        phases["other"] = round(total - sum(value for name, value in self.seconds.items() if name not in OVERLAPPING), 6)
        return {"phases": phases, "transaction_seconds": round(self.transaction_seconds, 6),
                "transactions": self.transactions, "longest_transaction_ms": round(self.longest_transaction * 1000, 3),
                "longest_lock_wait_ms": round(self.longest_lock_wait * 1000, 3)}


def timed_factory(clock: PhaseClock, factory: Callable[..., Any]) -> Callable[..., Any]:
    """A collaborator factory giving ``factory``'s collaborators with stopwatches on their methods."""

    def build(*args: Any, **kwargs: Any) -> Any:
        made = factory(*args, **kwargs)
        _wrap_method(made.lookup, "statuses", clock.timed("stash_lookup", getattr(made.lookup, "statuses")))
        _wrap_method(made.writer, "flush", clock.timed("write", getattr(made.writer, "flush")))
        queue_file = made.queue_file
        _wrap_method(queue_file, "ledger_records", clock.timed("ledger_read", queue_file.ledger_records))
        _wrap_method(queue_file, "write_chunk", clock.timed_transaction(queue_file))
        writer_file = getattr(made.writer, "queue_file", None)
        if writer_file is not None and writer_file is not queue_file:
            _wrap_method(writer_file, "write_chunk", clock.timed_transaction(writer_file))
        return dataclasses.replace(
            made,
            plex_health=clock.timed("plex_health", made.plex_health),
            queue_state=clock.timed("queue_snapshot", made.queue_state),
        )

    return build


def _wrap_method(owner: Any, name: str, wrapped: Callable[..., Any]) -> None:
    """Shadow ``owner.name`` with ``wrapped`` on this instance only."""
    setattr(owner, name, wrapped)


class TimedEntries:
    """A window of entries whose reads (``len()`` and iteration) are timed as ``dlq_read``.

    Entries are pulled ``_READ_BATCH`` at a time so the stopwatch costs little; everything
    else (``start_time``, ...) is the wrapped window's.
    """

    def __init__(self, window: Any, clock: PhaseClock) -> None:
        self._window = window
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._window, name)

    def __len__(self) -> int:
        began = time.perf_counter()
        try:
            return len(self._window)
        finally:
            self._clock.seconds["dlq_read"] += time.perf_counter() - began

    def __iter__(self) -> Iterator[Any]:
        seconds = self._clock.seconds
        rows = iter(self._window)
        while True:
            began = time.perf_counter()
            batch = list(islice(rows, _READ_BATCH))
            seconds["dlq_read"] += time.perf_counter() - began
            if not batch:
                return
            yield from batch


def time_window(plugin: Any, clock: PhaseClock) -> None:
    """Make ``plugin`` (this instance only) read its windows through :class:`TimedEntries`."""
    window_entries = plugin.window_entries
    plugin.window_entries = lambda start, end: TimedEntries(window_entries(start, end), clock)


def time_decoding(clock: PhaseClock) -> Callable[[], None]:
    """Time the engine's ``decode_entry_job`` (in this process); return what undoes it."""
    from .. import engine as recovery_engine

    original = getattr(recovery_engine, "decode_entry_job", None)
    if original is None:  # the engine no longer decodes through this name: decoding counts as "other"
        return lambda: None
    recovery_engine.decode_entry_job = clock.timed("decode", original)  # type: ignore[attr-defined]

    def undo() -> None:
        recovery_engine.decode_entry_job = original  # type: ignore[attr-defined]

    return undo
