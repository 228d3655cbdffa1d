"""Single flight: one recovery at a time per data directory, across threads and processes.

An exclusive ``flock`` on ``<data_dir>/recovery.lock``. The kernel drops the lock when its
holder dies, so a crashed recovery never leaves a stale lock behind. Waiting for it is
bounded (``wait`` seconds: short for the Stash hook, longer for the command line, one tick
for the daemon); whoever waits in vain gets ``RecoveryLockBusy``, naming the holder, which
writes its pid, host, command and start time into the file while it holds the lock.

The file is opened without following a symbolic link (``O_NOFOLLOW``) and must be a regular
file: a ``recovery.lock`` planted as a link or anything else is refused
(``RecoveryLockRefused``), so the plugin never creates or writes a file outside the data
directory through it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..redaction import safe_excerpt

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CLI_LOCK_WAIT",
    "DEFAULT_LOCK_WAIT",
    "HOOK_LOCK_WAIT",
    "LOCK_FILE_NAME",
    "RecoveryLockBusy",
    "RecoveryLockRefused",
    "lock_holder",
    "recovery_lock",
]

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "recovery.lock"
#: Seconds a recovery waits for another one to let the lock go, unless its door says otherwise.
DEFAULT_LOCK_WAIT = 60.0
#: The command line's and the Stash tasks' wait: a user is watching, a run of another door may be ending.
CLI_LOCK_WAIT = 60.0
#: The Stash hook's wait: Stash runs it on every scene update; the window stays pending for later.
HOOK_LOCK_WAIT = 5.0

# Longest wait between two attempts at the lock.
_MAX_POLL = 0.25
_HOLDER_LENGTH = 200
_fallback_lock = threading.Lock()


class RecoveryLockBusy(TimeoutError):
    """Another recovery held ``recovery.lock`` for the whole wait.

    Attributes:
        holder: What the holder wrote into the lock file (pid, host, command, since), or "".
    """

    def __init__(self, path: Path, waited: float, holder: str) -> None:
        who = f"held by {holder}" if holder else "held by another recovery"
        super().__init__(f"{path} is {who}; gave up after waiting {waited:g} s")
        self.holder = holder


class RecoveryLockRefused(OSError):
    """``recovery.lock`` is a symbolic link or not a regular file: it is not followed or used."""


def lock_holder(data_dir: str | Path) -> str:
    """What the current (or last) holder of the data directory's lock wrote: ``pid 12 on host (cmd) since T``."""
    path = Path(data_dir) / LOCK_FILE_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        text = os.read(fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(fd)
    return safe_excerpt(" ".join(text.split()), _HOLDER_LENGTH)


def _open_lock_file(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RecoveryLockRefused(
                errno.ELOOP, f"{path} is a symbolic link: refusing to follow it (remove it; the plugin creates its own)"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecoveryLockRefused(errno.EINVAL, f"{path} is not a regular file: refusing to use it (remove it)")
    return fd


def _describe_self() -> str:
    command = " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:2]])
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return safe_excerpt(f"pid {os.getpid()} on {socket.gethostname()} ({command}) since {since}", _HOLDER_LENGTH)


def _write_holder(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_describe_self() + "\n").encode("utf-8"), 0)
    except OSError as error:  # who holds it is a courtesy to whoever waits; the lock itself is held
        logger.debug("could not note the lock's holder: %s", error)


def _acquire(fd: int, path: Path, wait: float | None) -> None:
    assert fcntl is not None
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    started = time.monotonic()
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        left = started + wait - time.monotonic()
        if left <= 0:
            raise RecoveryLockBusy(path, wait, lock_holder(path.parent))
        time.sleep(min(pause, left))
        pause = min(pause * 2, _MAX_POLL)


@contextmanager
def recovery_lock(data_dir: str | Path, wait: float | None = DEFAULT_LOCK_WAIT) -> Iterator[None]:
    """Hold the data directory's recovery lock for the ``with`` block, waiting at most ``wait`` seconds.

    Not re-entrant: code that holds it must not take it again.

    Args:
        data_dir: The data directory holding ``recovery.lock``.
        wait: Most seconds to wait for another holder (None: as long as it takes).

    Raises:
        RecoveryLockBusy: Another recovery held it for the whole wait (the message names it).
        RecoveryLockRefused: ``recovery.lock`` is a symbolic link or not a regular file.
    """
    path = Path(data_dir) / LOCK_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not POSIX
        logger.warning("no fcntl on this platform: recoveries are single-flight within this process only")
        if not _fallback_lock.acquire(timeout=-1 if wait is None else wait):
            raise RecoveryLockBusy(path, wait or 0.0, "")
        try:
            yield
        finally:
            _fallback_lock.release()
        return
    fd = _open_lock_file(path)
    try:
        _acquire(fd, path, wait)
        _write_holder(fd)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
