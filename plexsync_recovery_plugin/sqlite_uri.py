"""Opening SQLite files we do not own: by URI with the path escaped, and leaving no file behind.

A ``file:`` URI built by string formatting cuts the path at ``?`` or ``#`` and decodes
``%xx``: a data dir named ``plex#2`` would silently open another, empty file.

A ``mode=ro`` connection to a database in WAL mode creates its ``-wal`` and ``-shm`` files
when they are missing (SQLite needs the shared-memory index to read any WAL database;
``nolock=1`` and ``locking_mode=EXCLUSIVE`` cannot open it read-only, measured with SQLite
3.40) and, being read-only, cannot remove them when it closes, as the last read-write
connection does. ``leave_no_new_files`` does that removal for it: once the process's last
reader of the file has closed, it takes the lock SQLite's last connection takes (an
exclusive lock on the database's shared-lock bytes, so no connection of another process is
open and none can open meanwhile) and removes the ``-wal`` and ``-shm`` files that did not
exist when the first reader opened, only if the ``-wal`` is still empty. A ``-wal`` another
connection wrote into, or files that were there before, are left to their writer, which
removes them on its own last close. ``immutable=1`` would create nothing, but it reads
without locks, so a writer's checkpoint during a long read could tear it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["leave_no_new_files", "sqlite_uri"]

logger = logging.getLogger(__name__)

#: SQLite's lock bytes in the database file (``os_unix.c``): readers hold a read lock on the
#: 510 "shared" bytes after the pending byte for as long as a WAL connection is open.
_PENDING_BYTE = 0x40000000
_SHARED_FIRST = _PENDING_BYTE + 2
_SHARED_SIZE = 510
_WAL_FILES = ("-wal", "-shm")

_guard = threading.Lock()
_readers: dict[str, int] = {}  # open readers of each file in this process
_absent: dict[str, set[str]] = {}  # which WAL files were missing when the first of them opened


def sqlite_uri(path: str | Path, mode: str) -> str:
    """``file:`` URI of ``path`` with ``mode`` (``ro``: never writes; ``rw``: never creates)."""
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


@contextmanager
def leave_no_new_files(path: str | Path) -> Iterator[None]:
    """Around a read-only connection to ``path``: afterwards, remove the empty WAL files it created.

    Readers of one file in this process are counted, so the files are looked at only once
    the last of them has closed. Never raises for the cleanup: a file that cannot be locked
    or removed is left (and logged at debug level).
    """
    key = os.path.abspath(path)
    with _guard:
        if not _readers.get(key):
            _absent[key] = {suffix for suffix in _WAL_FILES if not os.path.lexists(key + suffix)}
        _readers[key] = _readers.get(key, 0) + 1
    try:
        yield
    finally:
        with _guard:
            _readers[key] -= 1
            if not _readers[key]:
                del _readers[key]
                created = [suffix for suffix in sorted(_absent.pop(key)) if os.path.lexists(key + suffix)]
                if created:
                    _remove_unused(key, created)


def _open_here(paths: list[str]) -> bool:
    """Whether this process has one of ``paths`` open (Linux's ``/proc/self/fd``; False where it is missing).

    POSIX locks do not exclude the process that holds them, so another connection of this
    process (PlexSync's worker, when the plugin runs inside it) is found this way.
    """
    wanted = {os.path.realpath(path) for path in paths}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") in wanted:
                return True
        except OSError:
            continue
    return False


def _remove_unused(key: str, created: list[str]) -> None:
    """Remove the WAL files in ``created`` if no connection has ``key`` open and the ``-wal`` is empty."""
    if _open_here([key] + [key + suffix for suffix in _WAL_FILES]):
        return
    try:
        fd = os.open(key, os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))  # for the lock; never written
    except OSError as error:
        logger.debug("cannot lock %s to remove the %s it left: %s", key, created, error)
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SHARED_SIZE, _SHARED_FIRST, os.SEEK_SET)
        except OSError:  # a connection of another process has it open: its last close removes them
            return
        wal = key + "-wal"
        if os.path.lexists(wal) and os.lstat(wal).st_size:  # holds another connection's commits: its writer's now
            return
        for suffix in created:
            try:
                os.unlink(key + suffix)
            except FileNotFoundError:
                pass
    except OSError as error:
        logger.debug("could not remove the %s left beside %s: %s", created, key, error)
    finally:
        os.close(fd)  # releases the lock
