"""How many DLQ entries one chunk takes: sized by time on the queue's write lock, not by count.

Each chunk's jobs and ledger records are written in one transaction, and while it holds
the queue file's write lock PlexSync's worker cannot take or ack a job. The worker does not
queue for the lock: SQLite's busy handler sleeps and looks again after 1, 3, 8, 18, 33, 53 ms
and so on, so a transaction of 20 ms can cost it 33. Cutting one chunk's write into several
transactions back to back does not help (measured: its waits grew, as each part finds the
worker asleep and the next part takes the lock before it looks); what helps is a short
transaction followed by a long gap, which the screening of the next chunk provides. So a
chunk is as large as fits ``TARGET_SECONDS`` at the cost per entry measured so far, up to
the engine's usual chunk: on a fast disk every chunk keeps that size; on a slow disk, a
busy machine or with large jobs, chunks shrink.
"""

from __future__ import annotations

__all__ = ["MIN_ROWS", "TARGET_SECONDS", "LockBudget"]

#: What one chunk's transaction should hold the write lock for. PlexSync's worker may wait
#: the next look of its busy handler after it (33 ms for up to 33) plus its own ``get``
#: (~20 ms once months of acked rows pile up): about 50 ms in all. A 10 ms target was tried
#: (``bench --entries 100000 --paths batched --live-worker``, 4 runs each, interleaved):
#: the worker's longest waits were 40-62 ms against 38-60 ms at 25 ms, since its longest
#: waits come from CPU contention and its own ``get``, not from the chunk's size.
TARGET_SECONDS = 0.025
#: Never fewer entries a chunk: each transaction also costs ~1 ms of its own (begin, the
#: rows appended since the last chunk, commit), and each chunk one Stash request or more.
MIN_ROWS = 100
#: Weight of the newest transaction in the running cost of an entry.
_NEWEST_WEIGHT = 0.3


class LockBudget:
    """The running cost of one entry written under the queue's write lock, and the entries that fit the target.

    Args:
        target_seconds: What one transaction should hold the lock for.
        min_rows: The fewest entries a chunk is given, however dear they get.
    """

    def __init__(self, target_seconds: float = TARGET_SECONDS, *, min_rows: int = MIN_ROWS) -> None:
        if not target_seconds > 0 or min_rows < 1:
            raise ValueError(f"a lock budget needs a positive target and row count, got {target_seconds!r}, {min_rows!r}")
        self.target_seconds = target_seconds
        self.min_rows = min_rows
        self.seconds_per_row: float | None = None

    def rows(self) -> int | None:
        """Entries the next chunk may hold; None before any transaction was timed (no limit yet)."""
        if self.seconds_per_row is None:
            return None
        return max(self.min_rows, round(self.target_seconds / self.seconds_per_row))

    def observe(self, rows: int, seconds: float) -> None:
        """Learn from a transaction that recorded ``rows`` entries in the ledger in ``seconds``.

        ``seconds`` runs from asking for the lock to committing, so a wait for PlexSync's own
        lock counts (a busy worker makes the chunks smaller too), while work done before
        asking (encoding, reading the run's earlier jobs) and after committing does not.
        """
        if rows <= 0 or seconds <= 0:
            return
        cost = seconds / rows
        previous = self.seconds_per_row
        self.seconds_per_row = cost if previous is None else previous + _NEWEST_WEIGHT * (cost - previous)
