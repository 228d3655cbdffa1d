"""Reading one DLQ entry safely: its scene id and its job, or a clear reason it is corrupt."""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any, Mapping, NamedTuple

from .safe_pickle import UnsafePickleError, safe_loads

__all__ = ["CorruptEntryError", "DecodedJob", "MAX_SCENE_ID", "decode_entry_job", "entry_scene_id", "failed_at_seconds"]


class CorruptEntryError(ValueError):
    """A DLQ entry cannot be turned back into a job; the message says why."""


class DecodedJob(NamedTuple):
    """The parts of a job that recovery re-queues."""

    scene_id: int
    update_type: str
    data: Any


#: The largest id SQLite (a signed 64-bit INTEGER) and Stash (its ids are SQLite row ids) can hold.
MAX_SCENE_ID = 2**63 - 1


def _valid_scene_id(value: Any, where: str) -> int:
    """``value`` if it is a scene id SQLite and Stash can hold: checked before anything is asked or written."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CorruptEntryError(f"{where} scene_id must be a positive integer, got {value!r}")
    if value > MAX_SCENE_ID:
        raise CorruptEntryError(f"{where} scene_id {value} is larger than any id SQLite and Stash can hold ({MAX_SCENE_ID})")
    return value


def entry_scene_id(entry: Mapping[str, Any]) -> int | None:
    """Return the entry's ``scene_id`` column, or None when it is NULL (the job then decides).

    Raises:
        CorruptEntryError: The column holds something other than a positive integer.
    """
    value = entry.get("scene_id")
    return None if value is None else _valid_scene_id(value, "DLQ column")


def decode_entry_job(entry: Mapping[str, Any]) -> DecodedJob:
    """Decode the entry's pickled job without running any code.

    Raises:
        CorruptEntryError: ``job_data`` is missing, too large, not a safe pickle, not a
            job dict, lacks ``scene_id`` or ``update_type``, or names another scene than
            the entry's ``scene_id`` column.
    """
    blob = entry.get("job_data")
    if blob is None:
        size = entry.get("job_data_size")
        if size:
            raise CorruptEntryError(f"job_data is {size} bytes, too large to be a job")
        raise CorruptEntryError("job_data is empty")
    try:
        job = safe_loads(blob)
    except UnsafePickleError as error:
        raise CorruptEntryError(f"job_data refused: {error}") from None
    if not isinstance(job, dict):
        raise CorruptEntryError(f"job_data holds a {type(job).__name__}, not a job dict")
    if "scene_id" not in job or "update_type" not in job:
        missing = [key for key in ("scene_id", "update_type") if key not in job]
        raise CorruptEntryError(f"job_data has no {' or '.join(missing)}")
    scene_id = _valid_scene_id(job["scene_id"], "job")
    column = entry_scene_id(entry)
    if column is not None and column != scene_id:
        raise CorruptEntryError(f"DLQ column scene_id {column} differs from the job's scene_id {scene_id}")
    update_type = job["update_type"]
    if not isinstance(update_type, str) or not update_type:
        raise CorruptEntryError(f"job update_type must be a non-empty string, got {update_type!r}")
    return DecodedJob(scene_id, update_type, job.get("data"))


def failed_at_seconds(value: Any) -> float | None:
    """An entry's ``failed_at`` as Unix seconds, or None when it is not a time.

    PlexSync writes SQLite's ``CURRENT_TIMESTAMP`` (UTC text, whole seconds); ISO text with
    ``T``, ``Z``, an offset or fractions, and Unix numbers are read too. Text without a zone is UTC.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    return _text_seconds(value)


#: Naive UTC times are counted from here (what ``timestamp()`` of the same time in UTC gives).
_EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=4096)
def _text_seconds(value: str) -> float | None:
    """A text ``failed_at`` as Unix seconds; remembered, since a busy outage fails many jobs a second."""
    text = value.strip()
    readers = (_iso_seconds, float) if text[4:5] == "-" else (float, _iso_seconds)  # the likely one first
    for read in readers:
        try:
            return read(text)
        except ValueError:
            continue
    return None


def _iso_seconds(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - _EPOCH).total_seconds() if moment.tzinfo is None else moment.timestamp()
