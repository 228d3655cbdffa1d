"""Peak memory against window size: one bench per size, each in its own worker process.

Why: a recovery must stay flat in memory however many entries the window holds (it reads
the DLQ a page at a time and writes a chunk at a time). One size says little; the slope over
several does. :func:`run_sizes` runs :func:`.bench.run_bench` once per size (its own data,
its own worker process, so peaks never mix) and fits a line through the peaks.
``plexsync-recovery bench --sizes 50000,100000,200000`` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .bench import BenchReport, run_bench

__all__ = ["SizeRun", "SizesReport", "rss_slope", "run_sizes"]


@dataclass
class SizeRun:
    """One size's run of the first path given.

    Attributes:
        entries: In-window entries.
        seconds: ``outage_ended`` to ``recovery_completed``.
        peak_rss_mb: The worker's peak RSS, MiB.
        baseline_rss_mb: Its peak RSS just before the run (imports, clients).
        error: Why the run failed, or ``""``.
    """

    entries: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float
    error: str = ""


@dataclass
class SizesReport:
    """Peak RSS per size and its slope.

    Attributes:
        path: The path measured.
        sizes: One :class:`SizeRun` per size, in the order given.
        slope_kb_per_1000: Least-squares slope of peak RSS over entries, KiB per 1,000 entries.
        growth_slope_kb_per_1000: The same for peak minus baseline (the run's own growth).
        reports: The full bench report of each size.
    """

    path: str
    sizes: list[SizeRun]
    slope_kb_per_1000: float
    growth_slope_kb_per_1000: float
    reports: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)


def rss_slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of ``(entries, MiB)`` points in KiB per 1,000 entries (0.0 under two sizes)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    slope_mb_per_entry = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope_mb_per_entry * 1024 * 1000


def run_sizes(sizes: Sequence[int], path: str = "batched", **options: Any) -> SizesReport:
    """Run the bench once per size (``options`` as :func:`.bench.run_bench` takes them, ``dlq_rows`` included).

    Raises:
        ValueError: No size, a size below 1, or a bad option (as ``run_bench`` raises).
    """
    if not sizes:
        raise ValueError("give at least one size")
    reports: list[BenchReport] = [run_bench(size, [path], **options) for size in sizes]
    runs = [SizeRun(report.entries, run.seconds, run.peak_rss_mb, run.baseline_rss_mb, run.error)
            for report in reports for run in report.runs]
    good = [run for run in runs if not run.error]
    return SizesReport(
        path,
        runs,
        rss_slope([(run.entries, run.peak_rss_mb) for run in good]),
        rss_slope([(run.entries, run.peak_rss_mb - run.baseline_rss_mb) for run in good]),
        [report.as_dict() for report in reports],
    )
