"""The plugin's own small SQLite file, ``<data_dir>/recovery_state.db``.

It holds what the plugin must remember across restarts (pending windows, outages already
handled, the outages the watch daemon detected) and nothing of PlexSync's, so PlexSync's
files stay as PlexSync wrote them. Reports read it with ``read_state_rows``, which never
creates the file or a table.

A state file that is not a sound SQLite database (garbage, truncated) is moved aside and a
fresh one started, with a warning: a broken state file must not stop every later recovery.

The file and its journals are never followed through a symbolic link: one planted in the
data directory (pointing outside it, or nowhere) is refused with ``StateFileRefused``, and
the file is created with ``O_NOFOLLOW|O_EXCL`` before SQLite opens it, so SQLite never
creates a file outside the data directory on the plugin's behalf.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

from .file_backup import free_backup_name
from .sqlite_uri import sqlite_uri

__all__ = ["STATE_FILE_NAME", "StateFileRefused", "connect_state_db", "read_state_rows"]

logger = logging.getLogger(__name__)

STATE_FILE_NAME = "recovery_state.db"

#: The files SQLite may open beside the database (rollback journal, write-ahead log, its index).
_SIBLINGS = ("-journal", "-wal", "-shm")


class StateFileRefused(sqlite3.OperationalError):
    """The state file (or a journal of it) is not a plain file of the data directory: it is never opened.

    An ``OperationalError``, like a state file that cannot be written: callers keep their
    handling of that case; the message names the path and what it is.
    """


def _refuse_links(path: Path) -> None:
    """Refuse ``path`` or one of its journals when it is a symbolic link or not a regular file.

    Raises:
        StateFileRefused: The message names the path and where the link points.
    """
    for name in (str(path), *(f"{path}{suffix}" for suffix in _SIBLINGS)):
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            raise StateFileRefused(
                f"{name} is a symbolic link (to {os.readlink(name)!r}): the plugin's state file is never"
                " followed through a link; remove the link and run again"
            )
        if not stat.S_ISREG(info.st_mode):
            raise StateFileRefused(f"{name} is not a regular file: remove it and run again")


def _create_unfollowed(path: Path) -> None:
    """Create ``path`` empty (SQLite takes an empty file as a new database) unless it exists, never through a link.

    Raises:
        StateFileRefused: A link was planted there between the check and now.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileExistsError:  # already there (O_EXCL fails on a link too): checked below
        return
    os.close(fd)


def connect_state_db(data_dir: str | Path, schema: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the state file, creating ``schema`` (idempotent SQL) if needed; the caller closes it.

    Raises:
        StateFileRefused: The file or a journal of it is a symbolic link (or not a file).
        sqlite3.OperationalError: The file is locked, read-only or cannot be written (a
            corrupt file is set aside instead, see the module docstring).
    """
    path = Path(data_dir) / STATE_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_links(path)
    _create_unfollowed(path)
    _refuse_links(path)
    try:
        return _open(path, schema, timeout)
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as error:  # "file is not a database", "disk image is malformed"
        backup = _set_aside(path)
        logger.warning(
            "state file %s was unreadable (%s); kept it as %s and started afresh:"
            " outage windows it held for a retry are forgotten, recover them by hand if needed",
            path,
            error,
            backup,
        )
        _create_unfollowed(path)
        return _open(path, schema, timeout)


def read_state_rows(data_dir: str | Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run a query on the state file opened read-only; no file or no such table reads as no rows.

    Raises:
        StateFileRefused: The file or a journal of it is a symbolic link (or not a file).
        sqlite3.DatabaseError: The file exists but cannot be read (locked too long, not SQLite).
    """
    path = Path(data_dir) / STATE_FILE_NAME
    _refuse_links(path)
    if not path.exists():
        return []
    conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True, timeout=5.0)
    try:
        return [tuple(row) for row in conn.execute(sql, params)]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        conn.close()


def _open(path: Path, schema: str, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        with conn:
            conn.executescript(schema)
        problem = conn.execute("PRAGMA quick_check").fetchone()[0]  # the file is a few pages: cheap
        if problem != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
    except BaseException:
        conn.close()
        raise
    return conn


def _set_aside(path: Path) -> Path:
    """Rename the file (and any journal of it) to a free ``.corrupt-<time>-<pid>[-n]`` name."""
    backup = free_backup_name(path)
    for suffix in ("", "-journal", "-wal", "-shm"):  # a stale journal must not be replayed into the new file
        try:
            os.replace(f"{path}{suffix}", f"{backup}{suffix}")
        except FileNotFoundError:
            pass
    return backup
