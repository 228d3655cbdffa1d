"""The outage tracker: records Plex outages in PlexSync's history file and announces them.

Where PlexSync keeps its own ``worker/outage_history.py``, so a PlexSync developer finds it here.

``<data_dir>/outage_history.json`` is a list of ``{"started_at", "ended_at", "duration",
"jobs_affected"}`` (Unix seconds; ``ended_at`` and ``duration`` are null while the outage
lasts), newest last, at most 30 records (PlexSync keeps them in a deque of 30: the oldest
drop off), replaced atomically on every write. The file is re-read before every change.

This class writes the file only where the plugin's tracker *is* the PlexSync worker's
tracker (in-process). The watch daemon keeps its own detections in the plugin's state
(``detected_outages.py``), and every other reader reads through ``read_history_file``,
which never moves a file it does not own. What the records mean (runs of open records,
overlaps) is worked out in one place: ``outages.merged_outages``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..file_backup import free_backup_name
from ..formatting import iso_time
from ..signals import outage_ended, outage_started, send_isolated

__all__ = ["HISTORY_FILE_NAME", "MAX_RECORDS", "REREAD_PAUSES", "OutageHistory", "read_history_file"]

logger = logging.getLogger(__name__)

HISTORY_FILE_NAME = "outage_history.json"
MAX_RECORDS = 30


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and _is_time(value.get("started_at"))
        and (value.get("ended_at") is None or _is_time(value.get("ended_at")))
    )


#: Pauses before each re-read of a history that does not parse: a writer that rewrites the file
#: in place (truncate, then write) may be caught half-way. At most about half a second in all.
REREAD_PAUSES = (0.01, 0.02, 0.04, 0.08, 0.16, 0.2)


def _parse(data: bytes) -> list[dict[str, Any]]:
    records = json.loads(data.decode("utf-8"))
    if not isinstance(records, list) or not all(_is_record(record) for record in records):
        raise ValueError("not a list of outage records with numeric times")
    return records


def _read_settled(path: Path) -> tuple[list[dict[str, Any]] | None, ValueError | None]:
    """Parse ``path``; re-read while it does not parse and keeps changing, within ``REREAD_PAUSES``.

    Returns ``(records, None)``, ``(None, error)`` for a file that stays unreadable, or
    ``([], None)`` for a missing file. Non-empty garbage that stops changing is judged after two
    equal re-reads (about 30 ms); an empty file gets the whole wait.
    """
    previous: bytes | None = None
    last_error: ValueError | None = None
    unchanged = 0
    for pause in (0.0, *REREAD_PAUSES):
        time.sleep(pause)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return [], None
        try:
            return _parse(data), None
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
            last_error = error
        # An empty file is what an in-place rewrite leaves between its truncate and its write:
        # always worth the whole wait. Garbage that stops changing is not being written.
        unchanged = unchanged + 1 if data and data == previous else 0
        if unchanged >= 2:
            break
        previous = data
    return None, last_error


def read_history_file(path: Path, *, set_aside: bool = False) -> list[dict[str, Any]]:
    """Read a history file; a missing file is an empty history.

    A file that does not parse is re-read briefly first (another process may be rewriting
    it in place). One that stays unreadable (truncated, binary garbage, a time that is not a
    number, ...) reads as empty, with a warning. Only the file's writer passes
    ``set_aside=True``: the bad file is then moved to ``<name>.corrupt-<time>-<pid>[-<n>]``
    (kept for the user, never deleted or overwritten) before the history starts afresh; a
    mere reader never moves, renames or rewrites it.
    """
    records, error = _read_settled(path)
    if records is not None:
        return records
    if not set_aside:
        logger.warning("outage history %s is unreadable (%s); read as empty", path, error)
        return []
    backup = free_backup_name(path)
    try:
        os.replace(path, backup)
    except FileNotFoundError:  # another process already moved it
        return []
    logger.warning("outage history %s was unreadable (%s); kept it as %s and started afresh", path, error, backup)
    return []


class OutageHistory:
    """Records outage starts and ends, and sends ``outage_started`` / ``outage_ended``.

    Attributes:
        path: The history file.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / HISTORY_FILE_NAME
        self._lock = threading.Lock()

    def get_history(self) -> list[dict[str, Any]]:
        """Return every record, oldest first (the open outage, if any, last)."""
        with self._lock:
            return read_history_file(self.path)

    def get_current_outage(self) -> dict[str, Any] | None:
        """Return the open outage record, or None while Plex is up."""
        history = self.get_history()
        if history and history[-1].get("ended_at") is None:
            return history[-1]
        return None

    def record_outage_start(self, started_at: float) -> dict[str, Any] | None:
        """Open an outage that began at ``started_at`` and send ``outage_started``.

        Returns:
            The new record, or None if an outage is already open (nothing is sent).
        """
        with self._lock:
            history = read_history_file(self.path, set_aside=True)
            if history and history[-1].get("ended_at") is None:
                logger.debug("outage already open since %s", history[-1]["started_at"])
                return None
            record = {"started_at": float(started_at), "ended_at": None, "duration": None, "jobs_affected": 0}
            history.append(record)
            self._write(history)
        logger.warning("Plex outage started at %s", iso_time(started_at))
        send_isolated(outage_started, self, start=record["started_at"])
        return record

    def record_outage_end(self, ended_at: float, jobs_affected: int = 0) -> dict[str, Any] | None:
        """Close the open outage, persist it, then send ``outage_ended``.

        Returns:
            The closed record, or None if no outage was open (nothing is sent).
        """
        with self._lock:
            history = read_history_file(self.path, set_aside=True)
            if not history or history[-1].get("ended_at") is not None:
                logger.debug("outage end at %s ignored: no outage is open", ended_at)
                return None
            record = history[-1]
            record["ended_at"] = float(ended_at)
            record["duration"] = max(0.0, record["ended_at"] - float(record["started_at"]))
            record["jobs_affected"] = int(jobs_affected)
            self._write(history)
        logger.warning("Plex outage ended at %s after %.1f s", iso_time(ended_at), record["duration"])
        send_isolated(outage_ended, self, start=float(record["started_at"]), end=record["ended_at"])
        return record

    def _write(self, history: list[dict[str, Any]]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(prefix=f".{HISTORY_FILE_NAME}.", dir=self.data_dir)
        try:
            # mkstemp makes the file 0600: keep the mode PlexSync (maybe another user) reads it with.
            os.chmod(temp_name, _file_mode(self.path))
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(history[-MAX_RECORDS:], handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise


def _file_mode(path: Path) -> int:
    """The mode of ``path``, or what a new file would get under the current umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
