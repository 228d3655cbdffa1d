"""Single flight: one recovery at a time per data directory, across threads and processes.

An exclusive ``flock`` on ``<data_dir>/recovery.lock``. The kernel drops the lock when its
holder dies, so a crashed recovery never leaves a stale lock behind.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE_NAME", "recovery_lock"]

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "recovery.lock"
_fallback_lock = threading.Lock()


@contextmanager
def recovery_lock(data_dir: str | Path) -> Iterator[None]:
    """Hold the data directory's recovery lock for the ``with`` block, waiting for it if needed.

    Not re-entrant: code that holds it must not take it again.
    """
    path = Path(data_dir) / LOCK_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not POSIX
        logger.warning("no fcntl on this platform: recoveries are single-flight within this process only")
        with _fallback_lock:
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
