"""The plugin's own small SQLite file, ``<data_dir>/recovery_state.db``.

It holds what the plugin must remember across restarts (pending windows, outages already
handled, the outages the watch daemon detected, the Stash hook's marker) and nothing of
PlexSync's, so PlexSync's files stay as PlexSync wrote them. Reports read it with
``read_state_rows``, which never creates the file or a table.

This module is the file's one owner: the whole schema is here, versioned by SQLite's
``user_version`` and brought up to date by ``_MIGRATIONS`` in one transaction the first
time a process opens the file; the classes that keep a table (``PendingWindows``,
``DetectedOutages``, ``OutageSource``, ``HookMarker``) only query it. The file's integrity
is checked once per process, not on every connection.

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
import threading
from pathlib import Path
from typing import Callable

from .file_backup import free_backup_name
from .sqlite_uri import sqlite_uri

__all__ = ["SCHEMA_VERSION", "STATE_FILE_NAME", "StateFileRefused", "connect_state_db", "read_state_rows"]

logger = logging.getLogger(__name__)

STATE_FILE_NAME = "recovery_state.db"

#: The files SQLite may open beside the database (rollback journal, write-ahead log, its index).
_SIBLINGS = ("-journal", "-wal", "-shm")

#: Version 1: every table, as the versions before ``user_version`` created them one by one (so
#: a file they wrote, at version 0, keeps its rows).
_TABLES = """
CREATE TABLE IF NOT EXISTS pending_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    start REAL NOT NULL,
    end REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS detected_outages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    ended_at REAL,
    dated_from TEXT NOT NULL,
    jobs_affected INTEGER NOT NULL DEFAULT 0,
    announced_at REAL
);
CREATE TABLE IF NOT EXISTS outage_handled (
    source TEXT NOT NULL,
    record_start REAL NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    handled_at REAL NOT NULL,
    PRIMARY KEY (source, record_start, started_at)
);
CREATE TABLE IF NOT EXISTS follower_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS stash_hook_marker (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _create_tables(conn: sqlite3.Connection) -> None:
    for statement in filter(str.strip, _TABLES.split(";")):
        conn.execute(statement)


def _handled_per_outage(conn: sqlite3.Connection) -> None:
    """Version 2: what older versions kept as handled, carried into ``outage_handled`` per outage.

    They kept the history follower's windows in ``handled_outages`` (no identity: each is
    taken as the outage of PlexSync's that starts where it starts) and the daemon's
    ``detected_outages.announced_at``. A daemon row that ends before it starts was announced
    but its recovery failed ("start is after its end"): it stays unhandled, so it is
    recovered now. The sources are written as the values ``worker.outages`` gives them.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "handled_outages" in tables:
        conn.execute(
            "INSERT OR IGNORE INTO outage_handled SELECT 'plexsync', started_at, started_at, ended_at, handled_at"
            " FROM handled_outages"
        )
        conn.execute("DROP TABLE handled_outages")
    conn.execute(
        "INSERT OR IGNORE INTO outage_handled SELECT 'watch', started_at, started_at, ended_at, announced_at"
        " FROM detected_outages WHERE announced_at IS NOT NULL AND ended_at >= started_at"
    )
    conn.execute("UPDATE detected_outages SET announced_at = NULL WHERE announced_at IS NOT NULL")


#: ``_MIGRATIONS[n]`` brings a file from ``user_version`` n to n + 1.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_create_tables, _handled_per_outage)
SCHEMA_VERSION = len(_MIGRATIONS)

_checked_lock = threading.Lock()
_checked: set[tuple[str, int]] = set()  # (path, inode) of the files this process has found sound


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


def connect_state_db(data_dir: str | Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the state file, created or brought up to ``SCHEMA_VERSION`` if needed; the caller closes it.

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
        return _open(path, timeout)
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
        return _open(path, timeout)


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


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    """Connect, bring the schema up to date if it is behind; check the file once per process.

    The check is skipped for a file this process has checked already (the same inode: a file
    replaced or reset is checked again). Reading ``user_version`` costs one header read, so a
    file another process reset to empty is found at once and gets its tables back.
    """
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        identity = (str(path.resolve()), os.stat(path).st_ino)
        with _checked_lock:
            if identity not in _checked:
                problem = conn.execute("PRAGMA quick_check").fetchone()[0]  # the file is a few pages: cheap
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
                _checked.add(identity)
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Run the migrations the file lacks, in one transaction that another process cannot interleave.

    Raises:
        sqlite3.OperationalError: The file is newer than this version of the plugin knows (it is
            left as it is: a downgrade must not lose it).
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    previous, conn.isolation_level = conn.isolation_level, None
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # again, under the write lock
        if version > SCHEMA_VERSION:  # an OperationalError: never set aside as if it were corrupt
            raise sqlite3.OperationalError(
                f"state file schema version {version} is newer than this plugin's ({SCHEMA_VERSION}): upgrade the plugin"
            )
        for step in _MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.isolation_level = previous


def _set_aside(path: Path) -> Path:
    """Rename the file (and any journal of it) to a free ``.corrupt-<time>-<pid>[-n]`` name."""
    backup = free_backup_name(path)
    for suffix in ("", "-journal", "-wal", "-shm"):  # a stale journal must not be replayed into the new file
        try:
            os.replace(f"{path}{suffix}", f"{backup}{suffix}")
        except FileNotFoundError:
            pass
    return backup
