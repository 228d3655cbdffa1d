"""MTTR, MTBF and availability over outages: the figures ``outages`` and the Stash plugin's report show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .outages import Outage, merged_outages, union_of_outages

__all__ = ["OutageSummary", "summarize_intervals", "summarize_outages"]


@dataclass(frozen=True)
class OutageSummary:
    """Figures over outages (seconds; None where they cannot be computed).

    Outages that overlap (PlexSync's records of one outage, or PlexSync and the watch daemon
    seeing the same one) count once, so downtime never exceeds the span.

    Attributes:
        count: Outages, after merging.
        ongoing: Whether the newest one is still open.
        mttr_seconds: Mean duration of the closed outages.
        mtbf_seconds: Mean time between the starts of consecutive outages (needs 2).
        span_seconds: From the first recorded start to ``now``.
        downtime_seconds: Total time inside outages up to ``now``.
        availability_percent: ``100 * (1 - downtime / span)``.
    """

    count: int
    ongoing: bool
    mttr_seconds: float | None
    mtbf_seconds: float | None
    span_seconds: float | None
    downtime_seconds: float
    availability_percent: float | None


def summarize_intervals(outages: Sequence[Outage], now: float) -> OutageSummary:
    """Compute MTTR, MTBF and availability of ``outages`` (any sources) as seen at ``now``."""
    merged = union_of_outages(outages)
    if not merged:
        return OutageSummary(0, False, None, None, None, 0.0, None)
    first = merged[0].started_at
    span = now - first
    # Clipped to [first start, now]: a clock that ran ahead cannot make downtime exceed the span.
    downtime = sum(max(0.0, min(o.ended_at if o.ended_at is not None else now, now) - o.started_at) for o in merged)
    closed = [o.duration(now) for o in merged if o.ended_at is not None]
    starts = [o.started_at for o in merged]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    return OutageSummary(
        count=len(merged),
        ongoing=merged[-1].ongoing,
        mttr_seconds=sum(closed) / len(closed) if closed else None,
        mtbf_seconds=sum(gaps) / len(gaps) if gaps else None,
        span_seconds=span if span > 0 else None,
        downtime_seconds=downtime,
        availability_percent=100.0 * (1.0 - min(downtime, span) / span) if span > 0 else None,
    )


def summarize_outages(records: Sequence[dict[str, Any]], now: float) -> OutageSummary:
    """Compute the figures of PlexSync history records (merged into outages first) at ``now``."""
    return summarize_intervals(merged_outages(records), now)
