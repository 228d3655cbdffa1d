"""Outages as they really happened, from the records that describe them.

PlexSync's circuit breaker appends a new open record each time it reopens from half-open,
and its ``record_outage_end`` closes only the newest open record. One real outage therefore
reads ``[t1, open] [t2, open] [t3, t4]``: a run of open records followed by the one that was
closed. Its recovery scheduler may then close the older open record too, so closed records
can overlap. ``merged_outages`` turns any such list into the outages it means: each run of
open records joins the closed record that follows it, overlapping outages are one, and only
a run of open records at the very end is ongoing. Every reader goes through it, above all ``outage_source.OutageSource``, the one owner of
"which outages exist and which are handled".

An outage whose readings are out of order (the clock stepped back while it lasted: it ends
before it starts) covers both readings, from the earlier to the later. Each outage has a
stable identity (``Outage.key``): its source and the start of its first record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "SOURCE_PLEXSYNC",
    "SOURCE_WATCH",
    "Outage",
    "iso_utc",
    "merged_outages",
    "plexsync_outages",
    "union_of_outages",
]

#: Recorded by PlexSync's worker in ``outage_history.json``.
SOURCE_PLEXSYNC = "plexsync"
#: Detected by the ``watch`` daemon and kept in the plugin's ``recovery_state.db``.
SOURCE_WATCH = "watch"


@dataclass(frozen=True)
class Outage:
    """One outage (Unix seconds).

    Attributes:
        started_at: When it began: the earliest reading of its records.
        ended_at: When it ended (the latest reading); None while it is ongoing.
        jobs_affected: Sum of the records' ``jobs_affected``.
        source: ``SOURCE_PLEXSYNC`` or ``SOURCE_WATCH``.
        records: How many history records it merges.
        record_starts: Each merged record's ``started_at``, in the order they were recorded
            (its identity and aliases, see ``key``).
        clock_stepped: A reading is out of order (it ended before it started): the clock
            stepped back while it lasted, and it covers both readings.
        parts: The overlapping outages ``union_of_outages`` merged into this one (empty when
            it merged none). What is handled is judged part by part: a record closed inside an
            outage already handled (the clock had run ahead) is a new outage's.
    """

    started_at: float
    ended_at: float | None
    jobs_affected: int = 0
    source: str = SOURCE_PLEXSYNC
    records: int = 1
    record_starts: tuple[float, ...] = field(default=(), compare=False, repr=False)
    clock_stepped: bool = field(default=False, compare=False)
    parts: tuple["Outage", ...] = field(default=(), compare=False, repr=False)

    @property
    def ongoing(self) -> bool:
        """Whether it has not ended."""
        return self.ended_at is None

    @property
    def key(self) -> str:
        """Its stable identity: the source and the start of its first record (``plexsync:1771182000.0``)."""
        first = self.record_starts[0] if self.record_starts else self.started_at
        return f"{self.source}:{first!r}"

    def duration(self, now: float) -> float:
        """Seconds it lasted, or has lasted by ``now`` if ongoing; never negative."""
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.started_at)

    def as_dict(self, now: float) -> dict[str, Any]:
        """Plain data for JSON output: times in ISO-8601 UTC, as every JSON output of the plugin spells them."""
        return {
            "source": self.source,
            "started_at": iso_utc(self.started_at),
            "ended_at": None if self.ended_at is None else iso_utc(self.ended_at),
            "duration": self.duration(now),
            "ongoing": self.ongoing,
            "jobs_affected": self.jobs_affected,
            "records": self.records,
        }


def _jobs(record: dict[str, Any]) -> int:
    value = record.get("jobs_affected")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def merged_outages(records: Sequence[dict[str, Any]], source: str = SOURCE_PLEXSYNC) -> list[Outage]:
    """Turn history records (oldest first, as PlexSync writes them) into outages, oldest first.

    A closed run reaches from its earliest reading to its latest: an end before a start
    (the clock stepped back) widens the outage instead of emptying it.

    Args:
        records: ``{"started_at", "ended_at", ...}`` dicts with numeric times (``ended_at`` None while open).
        source: Label for the outages.

    Returns:
        The outages, none overlapping another; only the last can be ongoing.
    """
    outages: list[Outage] = []
    run: list[dict[str, Any]] = []  # open records waiting for the record that closes them
    for record in records:
        run.append(record)
        if record.get("ended_at") is None:
            continue
        starts = tuple(float(r["started_at"]) for r in run)
        end = float(record["ended_at"])
        outages.append(
            Outage(min(starts + (end,)), max(starts + (end,)), sum(_jobs(r) for r in run), source, len(run),
                   starts, clock_stepped=end < max(starts))
        )
        run = []
    if run:
        starts = tuple(float(r["started_at"]) for r in run)
        outages.append(Outage(min(starts), None, sum(_jobs(r) for r in run), source, len(run), starts))
    return union_of_outages(outages)


def union_of_outages(outages: Iterable[Outage]) -> list[Outage]:
    """Merge outages that overlap or touch into one, oldest first.

    A merged outage keeps the source of the first one when all share it, else ``"both"``.
    """
    merged: list[Outage] = []
    for outage in sorted(outages, key=lambda o: o.started_at):
        last = merged[-1] if merged else None
        if last is None or (last.ended_at is not None and outage.started_at > last.ended_at):
            merged.append(outage)
            continue
        ended = None if last.ended_at is None or outage.ended_at is None else max(last.ended_at, outage.ended_at)
        merged[-1] = replace(
            last,
            ended_at=ended,
            jobs_affected=last.jobs_affected + outage.jobs_affected,
            source=last.source if last.source == outage.source else "both",
            records=last.records + outage.records,
            record_starts=last.record_starts + outage.record_starts,
            clock_stepped=last.clock_stepped or outage.clock_stepped,
            parts=(last.parts or (last,)) + (outage.parts or (outage,)),
        )
    return merged


def plexsync_outages(data_dir: str | Path) -> list[Outage]:
    """PlexSync's outages from ``<data_dir>/outage_history.json`` (read only, never moved)."""
    from .outage_history import HISTORY_FILE_NAME, read_history_file

    return merged_outages(read_history_file(Path(data_dir) / HISTORY_FILE_NAME))


def iso_utc(unix_seconds: float) -> str:
    """ISO-8601 UTC, to the second, for people: ``2026-02-15T19:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))
