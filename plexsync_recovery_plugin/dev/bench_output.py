"""How ``plexsync-recovery bench`` prints its reports: tables for people, the report itself for ``--json``.

Only printing lives here; :mod:`..cli.bench_cmd` parses the flags and runs the bench. It imports
no bench module at run time (only their types, for the checker), so loading it costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bench import BenchReport
    from .bench_dedup import DedupReport
    from .bench_floor import FloorReport
    from .bench_sizes import SizesReport
    from .bench_window import WindowQueryReport

__all__ = ["print_bench", "print_dedup", "print_floor", "print_sizes", "print_window_query"]

#: The phase columns, as ``bench_phases.PHASES`` names them, then the rest.
_PHASE_COLUMNS = ("plex_health", "queue_snapshot", "dlq_read", "decode", "ledger_read", "stash_lookup", "write", "other")
_PHASE_HEADERS = ("plex", "queue snapshot", "DLQ read", "decode", "ledger", "Stash", "write", "other")


def print_dedup(out: Any, report: "DedupReport") -> None:
    """The ``--dedup`` read over a long-lived queue."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    out.line(f"queue: {report.acked_rows} old acked rows + live and recent ones, {report.file_mb:.0f} MB"
             f" (built in {report.build_seconds:.1f} s)")
    out.line("read (live jobs + acked since the window): " + ", ".join(f"{s:.3f} s" for s in report.read_seconds))
    out.line(f"found {report.live_scenes} scenes with a live job, {report.recent_acked_scenes} acked since the window")


def print_bench(out: Any, report: "BenchReport") -> None:
    """Each path's time and memory, where its time went, and what PlexSync's worker waited."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    rows = [
        [run.path, run.entries, round(run.seconds, 3), round(run.cpu_seconds, 3), round(run.entries_per_second),
         round(run.peak_rss_mb, 1), run.error or "ok"]
        for run in report.runs
    ]
    out.table(
        ["path", "entries", "seconds", "CPU s", "entries/s", "peak RSS MB", "status"],
        rows,
        title=(
            f"recovery of {report.entries} in-window entries ({report.noise} others in the DLQ,"
            f" {report.deleted} scenes deleted from Stash, {report.queued} already queued,"
            f" {report.acked_history} old acked rows in the queue; scene ids "
            f"{'scattered over' if report.scattered else 'in'} failure order)"
        ),
    )
    if report.ratio:
        out.line(f"per-entry/batched: {report.ratio:.1f}x")
    out.line("same result on every path: " + ("yes" if report.same_result else "NO"))
    _print_phases(out, report)
    for run in report.runs:
        if run.stash_requests:
            asked = ", ".join(f"{name} x{count}" for name, count in sorted(run.stash_requests.items()))
            out.line(f"{run.path}: Stash resolved {asked}")
        if run.transactions:
            out.line(f"{run.path}: {run.transactions} queue transactions held the lock {run.transaction_seconds:.3f} s"
                     f" in all (within write), the longest {run.longest_transaction_ms:.1f} ms;"
                     f" the longest wait for PlexSync's lock {run.longest_lock_wait_ms:.1f} ms")
        if run.live_worker is not None:
            _print_live_worker(out, run.path, run.live_worker)


def _print_phases(out: Any, report: "BenchReport") -> None:
    rows = [[run.path, *(round(run.phases.get(name, 0.0), 3) for name in _PHASE_COLUMNS)]
            for run in report.runs if run.phases]
    if rows:
        out.table(["path", *_PHASE_HEADERS], rows, title="seconds per phase (Stash: on its own thread, overlapping the rest; other: the engine, the plugin, signals, waiting for Stash)")


def _print_live_worker(out: Any, path: str, seen: dict[str, Any]) -> None:
    out.line(
        f"{path}: PlexSync's worker took {seen['jobs_taken']} jobs during the recovery ({seen['seconds']:.2f} s,"
        f" {seen['operations']} get/ack calls, {seen['empty_gets']} found it empty); longest wait"
        f" {seen['longest_wait_ms']:.1f} ms (get {seen['longest_get_ms']:.1f}, ack {seen['longest_ack_ms']:.1f};"
        f" its own CPU in the longest {seen['longest_wait_cpu_ms']:.1f}),"
        f" 99th percentile {seen['p99_wait_ms']:.1f} ms" + (f"; error: {seen['error']}" if seen["error"] else "")
    )
    out.line(
        f"{path}: alone before the recovery it took {seen['baseline_jobs_taken']} jobs in"
        f" {seen['baseline_operations']} calls; longest {seen['baseline_longest_wait_ms']:.1f} ms,"
        f" 99th percentile {seen['baseline_p99_wait_ms']:.1f} ms"
    )


def print_sizes(out: Any, report: "SizesReport") -> None:
    """Peak RSS per window size and the slope."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    rows = [[run.entries, round(run.seconds, 3), round(run.baseline_rss_mb, 1), round(run.peak_rss_mb, 1),
             round(run.peak_rss_mb - run.baseline_rss_mb, 1), run.error or "ok"] for run in report.sizes]
    out.table(["entries", "seconds", "baseline RSS MB", "peak RSS MB", "growth MB", "status"], rows,
              title=f"peak RSS of the {report.path} path per window size (each size in its own process)")
    out.line(f"slope: {report.slope_kb_per_1000:.1f} KB of peak RSS per 1,000 entries"
             f" ({report.growth_slope_kb_per_1000:.1f} KB of growth over the baseline)")


def print_window_query(out: Any, report: "WindowQueryReport") -> None:
    """The ``--window-query`` reads."""
    if out.json_mode:
        out.json(report.as_dict())
        return

    def runs(timings: list[float]) -> str:
        return ", ".join(f"{seconds:.4f}" for seconds in timings)

    out.table(
        ["DLQ", "rows", "window rows", "returned", "read s (each run)"],
        [
            ["PlexSync's form only", report.rows, report.window_rows, report.returned, runs(report.query_seconds)],
            ["  same, seeking PlexSync's form alone", report.rows, report.window_rows, report.returned,
             runs(report.plexsync_form_only_seconds)],
            [f"{report.mixed_share:.0%} in T/Z/+00:00/Unix forms", report.rows, report.window_rows,
             report.mixed_returned, runs(report.mixed_query_seconds)],
            ["PlexSync's form, by scene (as a recovery reads)", report.rows, report.window_rows, report.returned,
             runs(report.scene_order_seconds)],
        ],
        title=f"DLQ window query on PlexSync's idx_failed_at (len() and every page; DLQs built in "
        f"{report.build_seconds:.1f} s)",
    )
    for statement, details in report.plan.items():
        out.line(f"plan ({statement}): {'; '.join(details)}")


def print_floor(out: Any, report: "FloorReport") -> None:
    """The ``--floor`` steps, one row per run."""
    if out.json_mode:
        out.json(report.as_dict())
        return
    steps = zip(report.read_seconds, report.decode_seconds, report.encode_seconds, report.write_seconds,
                report.total_seconds)
    out.table(
        ["run", "read", "decode", "encode", "write", "total s"],
        [[number, *(round(seconds, 3) for seconds in run)] for number, run in enumerate(steps, 1)],
        title=(f"the floor of a recovery of {report.entries} entries ({report.jobs} jobs): the window in one"
               " statement, safe_loads, one job per scene, 1,000 entries a transaction; no Stash, Plex or dedup"),
    )
