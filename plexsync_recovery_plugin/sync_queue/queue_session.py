"""One connection to PlexSync's queue file for the chunks of one run, kept off PlexSync's way.

Why: opening a connection per chunk costs ~2 ms and a cold page cache (~0.35 s of a
100,000-entry run). And every millisecond a chunk's transaction holds the write lock, a
PlexSync worker taking a job may wait; so the session's commits do not wait for the disk
(``synchronous = NORMAL``) and do not copy the WAL back (no auto-checkpoint): between
chunks :meth:`QueueSession.checkpoint` does both with no lock held, once a few hundred
pages have gathered, and as the session ends the rest is copied and the WAL synced, so a
finished run is as durable as one committed with a full sync.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["CHECKPOINT_FRAMES", "QueueSession"]

logger = logging.getLogger(__name__)

#: WAL frames (pages) a session lets gather before copying them back: well under the 1,000
#: at which SQLite makes the next commit, often PlexSync's worker's, copy them itself. A
#: 1,000-entry chunk writes about 70; each copy costs two fsyncs (tens of ms on a disk).
CHECKPOINT_FRAMES = 350


class QueueSession:
    """The queue file's connection for a run, opened on first use; outside a run, one per call.

    Args:
        connect: Opens a new read-write connection to the file (``isolation_level=None``).
        db_path: The file, whose ``-wal`` is synced when the session ends.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], db_path: Path) -> None:
        self._connect = connect
        self._wal_path = Path(f"{db_path}-wal")
        self._active = False
        self._held: sqlite3.Connection | None = None
        self._wrote = False
        self._chunks_since_copy = 0
        self._frames_per_chunk = float(CHECKPOINT_FRAMES)  # unknown until the first copy: copy then

    @property
    def active(self) -> bool:
        """Whether a run's session is open."""
        return self._active

    @contextmanager
    def running(self) -> Iterator[None]:
        """The session of one run (from one thread); it holds no lock between calls."""
        self._active, self._wrote, self._chunks_since_copy = True, False, 0
        try:
            yield
        finally:
            self._active = False
            self.release(self._held, failed=True)  # syncs the WAL if the session wrote

    def connection(self) -> sqlite3.Connection:
        """The session's connection, or a new one outside a session (give it back with :meth:`release`)."""
        if not self._active:
            return self._connect()
        if self._held is None:
            self._held = self._connect()
            self._held.execute("PRAGMA wal_autocheckpoint = 0")
            self._held.execute("PRAGMA synchronous = NORMAL")
        return self._held

    def release(self, conn: sqlite3.Connection | None, *, failed: bool = False, wrote: bool = False) -> None:
        """Close ``conn`` unless it is the session's; close that one too after an error (syncing what it wrote)."""
        self._wrote = self._wrote or wrote
        if conn is None or (conn is self._held and not failed):
            return
        if conn is self._held:
            if self._wrote:
                self._copy_back(conn)
                self._sync_wal()
            self._held = None
        conn.close()

    def checkpoint(self) -> None:
        """After a chunk: copy the WAL's pages into the file (PASSIVE: no lock held), about every ``CHECKPOINT_FRAMES``.

        How many pages a chunk writes is learnt from the last copy, so the next chunk is
        not let past the budget. Left to SQLite, the commit that finds 1,000 pages in the WAL copies them, and after our
        chunks that is often PlexSync's worker acking one job: tens of ms it would wait.
        """
        if self._held is None:
            return
        self._chunks_since_copy += 1
        if (self._chunks_since_copy + 1) * self._frames_per_chunk > CHECKPOINT_FRAMES:
            frames = self._copy_back(self._held)
            if frames:  # PlexSync's frames count too: a busy worker makes copies more frequent
                self._frames_per_chunk = frames / self._chunks_since_copy
            self._chunks_since_copy = 0

    def _copy_back(self, conn: sqlite3.Connection) -> int:
        """A PASSIVE checkpoint on ``conn``; return the frames the WAL held (0 when it failed)."""
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            logger.debug("checkpoint of %s failed (the next one catches up): %s", self._wal_path, error)
            return 0
        return int(row[1]) if row and row[1] > 0 else 0

    def _sync_wal(self) -> None:
        """Make every frame written so far durable, whatever a checkpoint could copy."""
        try:
            descriptor = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: the frames are in the file, synced by that checkpoint
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
