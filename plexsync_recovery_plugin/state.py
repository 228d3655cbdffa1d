"""The plugin's own state beside PlexSync's files: ``recovery_state.db`` and ``recovery.lock``.

``recovery_state.db`` has one owner here: one schema, migrated by ``user_version``, checked
once per process, symlinks refused. It keeps pending windows (outages not yet recovered,
retried later) and, for the other modules that own a table in it, the connection.
``recovery.lock`` keeps two recoveries from writing at once; waits are bounded and the
holder is named.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import stat
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .file_backup import free_backup_name
from .formatting import iso_time
from .redaction import safe_excerpt
from .sqlite_uri import sqlite_uri
from .sync_queue.dlq import selected_milliseconds

__all__ = ['SCHEMA_VERSION', 'STATE_FILE_NAME', 'StateFileRefused', 'connect_state_db', 'read_state_rows', 'PendingWindows', 'windows_touch', 'CLI_LOCK_WAIT', 'DEFAULT_LOCK_WAIT', 'HOOK_LOCK_WAIT', 'LOCK_FILE_NAME', 'RecoveryLockBusy', 'RecoveryLockRefused', 'lock_holder', 'recovery_lock', 'PluginState', 'forget', 'plugin_state']


# ==== state db ==================================================================================
# The plugin's own small SQLite file, ``<data_dir>/recovery_state.db``.
#
# It holds what the plugin must remember across restarts (pending windows, outages already
# handled, the outages the watch daemon detected, the Stash hook's marker) and nothing of
# PlexSync's, so PlexSync's files stay as PlexSync wrote them. Reports read it with
# ``read_state_rows``, which never creates the file or a table.
#
# This module is the file's one owner: the whole schema is here, versioned by SQLite's
# ``user_version`` and brought up to date by ``_MIGRATIONS`` in one transaction the first
# time a process opens the file; the classes that keep a table (``PendingWindows``,
# ``DetectedOutages``, ``OutageSource``, ``HookMarker``) only query it. The file's integrity
# is checked once per process, not on every connection.
#
# A state file that is not a sound SQLite database (garbage, truncated) is moved aside and a
# fresh one started, with a warning: a broken state file must not stop every later recovery.
#
# The file and its journals are never followed through a symbolic link: one planted in the
# data directory (pointing outside it, or nowhere) is refused with ``StateFileRefused``, and
# the file is created with ``O_NOFOLLOW|O_EXCL`` before SQLite opens it, so SQLite never
# creates a file outside the data directory on the plugin's behalf.

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
    recovered now. The sources are written as the values ``outages`` gives them.
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


# ==== pending windows ===========================================================================
# Outage windows whose recovery is not finished yet, kept until a run completes them.
#
# A window becomes pending when its run was deferred (Plex unhealthy, Stash unable to answer,
# queue not writable). It survives restarts, merges with any overlapping or touching window,
# and is dropped only after a recovery over it completed. Callers hold the recovery lock.
#
# Windows select DLQ entries at SQLite's millisecond precision, so two windows "touch" when
# no millisecond lies between them: the merged window then selects exactly the entries of the
# two, never an entry that failed between two outages.

def windows_touch(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two windows overlap, or no millisecond a DLQ entry could carry lies between them."""
    (a_start, a_end), (b_start, b_end) = first, second
    if a_start <= b_end and b_start <= a_end:
        return True
    low, high = (first, second) if a_end < b_start else (second, first)
    return selected_milliseconds(*high)[0] <= selected_milliseconds(*low)[1] + 1


class PendingWindows:
    """The pending windows of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def add(self, start: float, end: float) -> tuple[float, float]:
        """Make ``[start, end]`` pending, merged with the windows it overlaps or touches.

        Returns:
            The merged window now pending.
        """
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                rows = conn.execute("SELECT id, start, end FROM pending_windows ORDER BY start").fetchall()
                merged = True
                while merged:  # a merge can make the window reach one it did not touch before
                    merged = False
                    for row in rows:
                        if windows_touch((start, end), (row[1], row[2])):
                            conn.execute("DELETE FROM pending_windows WHERE id = ?", (row[0],))
                            start, end = min(start, row[1]), max(end, row[2])
                            rows.remove(row)
                            merged = True
                            break
                conn.execute("INSERT INTO pending_windows (start, end) VALUES (?, ?)", (start, end))
        finally:
            conn.close()
        return start, end

    def windows(self) -> list[tuple[float, float]]:
        """Return the pending windows, oldest first."""
        if not (self.data_dir / STATE_FILE_NAME).exists():
            return []
        conn = connect_state_db(self.data_dir)
        try:
            return [(row[0], row[1]) for row in conn.execute("SELECT start, end FROM pending_windows ORDER BY start")]
        finally:
            conn.close()

    def remove(self, start: float, end: float) -> None:
        """Drop the window ``[start, end]`` after a completed run over it."""
        conn = connect_state_db(self.data_dir)
        try:
            with conn:
                conn.execute("DELETE FROM pending_windows WHERE start = ? AND end = ?", (start, end))
        finally:
            conn.close()


# ==== recovery lock =============================================================================
# Single flight: one recovery at a time per data directory, across threads and processes.
#
# An exclusive ``flock`` on ``<data_dir>/recovery.lock``. The kernel drops the lock when its
# holder dies, so a crashed recovery never leaves a stale lock behind. Waiting for it is
# bounded (``wait`` seconds: short for the Stash hook, longer for the command line, one tick
# for the daemon); whoever waits in vain gets ``RecoveryLockBusy``, naming the holder, which
# writes its pid, host, command and start time into the file while it holds the lock.
#
# The file is opened without following a symbolic link (``O_NOFOLLOW``) and must be a regular
# file: a ``recovery.lock`` planted as a link or anything else is refused
# (``RecoveryLockRefused``), so the plugin never creates or writes a file outside the data
# directory through it.

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


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
    since = iso_time(time.time())
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


# ==== forgetting ================================================================================
# Removing everything the plugin keeps in a data directory, and nothing of PlexSync's: its state
# file (with its journals and any copy of a broken one set aside), its lock, and its tables in
# PlexSync's queue file, which that file's owner (``sync_queue.operations.QueueFile``) drops.


@dataclass(frozen=True)
class PluginState:
    """What the plugin keeps in one data directory.

    Attributes:
        files: Its files there: ``recovery_state.db`` (and journals, and copies of a broken one), ``recovery.lock``.
        queue_tables: Its tables in PlexSync's ``queue/data.db``, with their rows.
    """

    files: tuple[Path, ...]
    queue_tables: dict[str, int]

    @property
    def empty(self) -> bool:
        """Whether there is nothing of the plugin's."""
        return not self.files and not self.queue_tables


def _state_files(data_dir: Path) -> list[Path]:
    names = [STATE_FILE_NAME + suffix for suffix in ("", *_SIBLINGS)]
    found = [data_dir / name for name in names if os.path.lexists(data_dir / name)]
    found += sorted(data_dir.glob(f"{STATE_FILE_NAME}.corrupt-*"))  # set aside by ``_set_aside``
    if os.path.lexists(data_dir / LOCK_FILE_NAME):
        found.append(data_dir / LOCK_FILE_NAME)
    return found


def plugin_state(data_dir: str | Path) -> PluginState:
    """What ``forget`` would remove from ``data_dir``; nothing is changed or created.

    Raises:
        QueueFileError: PlexSync's queue file could not be read.
    """
    from .sync_queue.operations import QUEUE_DIR_NAME, QueueFile

    folder = Path(data_dir)
    return PluginState(tuple(_state_files(folder)), QueueFile(folder / QUEUE_DIR_NAME).ledger_tables())


def forget(data_dir: str | Path, lock_wait: float = CLI_LOCK_WAIT) -> PluginState:
    """Remove the plugin's own state from ``data_dir``; return what was removed. PlexSync's files stay as they are.

    It waits (at most ``lock_wait`` seconds) for a recovery under way, so none is cut in two;
    then its tables go from the queue file, its state file with its journals and set-aside
    copies, and last the lock. A ``watch`` daemon or the Stash plugin still running starts
    again from a first start afterwards.

    Raises:
        RecoveryLockBusy: A recovery held the lock for the whole wait (nothing was removed).
        RecoveryLockRefused: ``recovery.lock`` is a link or not a file (nothing was removed).
        QueueFileError: The queue file could not be changed (nothing was removed).
    """
    from .sync_queue.operations import QUEUE_DIR_NAME, QueueFile

    folder = Path(data_dir)
    queue = QueueFile(folder / QUEUE_DIR_NAME)
    with recovery_lock(folder, wait=lock_wait):
        tables = queue.ledger_tables()
        queue.drop_ledger()
        removed = [path for path in _state_files(folder) if path.name != LOCK_FILE_NAME]
        for path in removed:
            path.unlink(missing_ok=True)
    lock = folder / LOCK_FILE_NAME
    lock.unlink(missing_ok=True)
    logger.info("forgot the plugin's state in %s: %s; tables %s", folder, ", ".join(p.name for p in removed) or "no file",
                ", ".join(tables) or "none")
    return PluginState((*removed, lock), tables)
