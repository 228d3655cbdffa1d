"""``plexsync-recovery bench``: a small run through the command line, both paths, sane report.

No timing is asserted: the bench is for measuring, not for failing tests on a busy machine.
Budget: about 4 s (two worker processes start and import plexapi/stashapi).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.dev import bench
from plexsync_recovery_plugin.dev.bench import rss_slope
from plexsync_recovery_plugin.dev.bench_live_worker import summarize_waits
from plexsync_recovery_plugin.dev.bench_worker import OVERLAPPING, PHASES
from plexsync_recovery_plugin.dev.plexsync_data import failure_order
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqWindow
from plexsync_recovery_plugin.sync_queue.operations import get_queued_scene_ids


def test_bench_json_reports_both_paths_with_the_same_result(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--entries", "200", "--acked-history", "300", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)

    assert (report["entries"], report["noise"], report["deleted"], report["queued"]) == (200, 200, 20, 20)
    assert (report["acked_history"], report["scattered"], report["live_worker"]) == (300, True, False)
    assert [run["path"] for run in report["runs"]] == ["batched", "per-entry"]
    for run in report["runs"]:
        assert run["error"] == ""
        assert run["entries"] == 200
        assert run["seconds"] > 0
        assert run["entries_per_second"] == pytest.approx(200 / run["seconds"])
        assert 0 < run["baseline_rss_mb"] <= run["peak_rss_mb"] < 1024
        result = run["result"]
        assert result["total_dlq_entries"] == 200  # the noise stayed out of the window
        assert (result["recovered"], result["skipped_already_queued"], result["skipped_scene_missing"]) == (160, 20, 20)
        assert (result["failed"], result["skipped_stash_error"], result["deferred"]) == (0, 0, False)
        assert run["queue_rows"] == 480  # 300 acked long ago, 20 queued before, 160 recovered
    batched, per_entry = report["runs"]
    assert batched["result"] == per_entry["result"]
    assert report["same_result"] is True
    assert report["ratio"] == pytest.approx(per_entry["seconds"] / batched["seconds"])
    # Each path asked Stash its own way: a range query per chunk, or one findScene per candidate scene.
    assert batched["stash_requests"].get("findScene", 0) == 0 and batched["stash_requests"]["findScenes"] >= 1
    assert per_entry["stash_requests"]["findScene"] == 180 and "findScenes" not in per_entry["stash_requests"]


def test_bench_table_names_each_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--entries", "30", "--paths", "batched", "--acked-history", "10"]) == 0
    out = capsys.readouterr().out
    assert "recovery of 30 in-window entries" in out and "10 old acked rows" in out
    row, phases = [line for line in out.splitlines() if line.split()[:1] == ["batched"]]
    assert row.split()[1] == "30" and row.split()[-1] == "ok"
    assert "seconds per phase" in out and len(phases.split()) == 9  # the path and eight figures
    assert "per-entry" not in out.split("same result")[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["bench", "--entries", "0"], "'0'"),
        (["bench", "--entries", "many"], "'many'"),
        (["bench", "--paths", "batched,sideways"], "'sideways'"),
        (["bench", "--paths", "batched,batched"], "'batched,batched'"),
        (["bench", "--window-query", "--rows", "10", "--window-rows", "11"], "11"),
        (["bench", "--entries", "20", "--dlq-rows", "19"], "19"),
        (["bench", "--sizes", "100,200", "--dlq-rows", "150"], "150"),
        (["bench", "--sizes", "100,lots"], "'100,lots'"),
        (["bench", "--sizes", "100,0"], "'100,0'"),
        (["bench", "--acked-history", "-1"], "'-1'"),
    ],
)
def test_bad_options_give_one_line_naming_the_value(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("plexsync-recovery: error:") and named in err


def test_window_query_mode_reads_the_window_through_the_index(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--window-query", "--rows", "3000", "--window-rows", "250", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["window_rows"], report["returned"]) == (3000, 250, 250)
    assert len(report["query_seconds"]) == 3
    assert report["mixed_returned"] == 250
    assert len(report["plexsync_form_only_seconds"]) == len(report["mixed_query_seconds"]) == 3
    assert len(report["scene_order_seconds"]) == 3
    assert all(details[0].startswith("SEARCH dead_letters USING INDEX idx_failed_at (")
               for details in report["plan"].values())


def test_built_data_dir_is_plexsync_shaped(tmp_path: Path) -> None:
    dataset = bench.build_data_dir(tmp_path, 50, noise=30)
    dlq = DeadLetterQueue(tmp_path)
    assert dlq.get_count() == 80
    window = DlqWindow(dlq, dataset.start, dataset.end, ["PlexServerDown"])
    assert sorted(entry["scene_id"] for entry in window) == list(range(1, 51))
    assert get_queued_scene_ids(tmp_path / "queue") == {5, 15, 25, 35, 45}
    assert set(dataset.stash_scene_ids()) == set(range(1, 51)) - {10, 20, 30, 40, 50}
    with pytest.raises(ValueError, match="already holds a DLQ"):
        bench.build_data_dir(tmp_path, 5)


def test_bench_dedup_reads_a_long_lived_queue_and_finds_only_what_covers(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--dedup", "--acked-rows", "3000", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["acked_rows"] == 3000 and len(report["read_seconds"]) == 3
    # 200 live jobs (enqueued a month before the window) and 800 acked after it began; the 3,000 older
    # acked rows cover nothing.
    assert (report["live_scenes"], report["recent_acked_scenes"]) == (200, 800)


def test_batched_run_reports_its_phases_and_what_plexsyncs_worker_waited(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--entries", "300", "--paths", "batched", "--acked-history", "200", "--live-worker", "--json"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["live_worker"] is True
    [run] = report["runs"]
    assert run["error"] == ""

    phases = run["phases"]
    assert set(phases) == {*PHASES, "other"}
    assert all(phases[name] >= 0 for name in PHASES)
    # Every phase happened, and the main thread's phases fit in the run (other = total - those, a little
    # slack for rounding); the Stash lookup runs on its own thread, overlapping them.
    assert all(phases[name] > 0 for name in ("dlq_read", "decode", "stash_lookup", "write"))
    main_thread = [name for name in PHASES if name not in OVERLAPPING]
    assert sum(phases[name] for name in main_thread) <= run["seconds"] + 0.005
    assert phases["other"] == pytest.approx(run["seconds"] - sum(phases[name] for name in main_thread), abs=1e-5)
    assert 0 < run["cpu_seconds"] <= 2 * run["seconds"] + 0.05  # two cores at most, and it did compute
    assert run["transactions"] == 1  # 300 entries: one chunk, one transaction
    assert 0 < run["transaction_seconds"] <= phases["write"]
    assert run["longest_transaction_ms"] == pytest.approx(run["transaction_seconds"] * 1000, abs=0.01)
    assert 0 <= run["longest_lock_wait_ms"] < run["seconds"] * 1000

    # Scattered ids over the failure order, yet recovered in scene order: a recovery reads its window by scene.
    assert run["result"]["recovered"] == 240 and run["result"]["recovered_scene_ids_ascending"] is True

    worker = run["live_worker"]
    assert worker["error"] == ""
    assert worker["baseline_jobs_taken"] + worker["jobs_taken"] > 0  # 30 jobs were queued before the outage ended
    assert worker["operations"] >= 1 and worker["baseline_operations"] >= 1  # it ran alone, then beside the run
    assert worker["operations"] >= 2 * worker["jobs_taken"]
    assert 0 <= worker["p99_wait_ms"] <= worker["longest_wait_ms"]
    assert 0 <= worker["baseline_p99_wait_ms"] <= worker["baseline_longest_wait_ms"]
    assert worker["longest_wait_ms"] == max(worker["longest_get_ms"], worker["longest_ack_ms"])
    assert 0 < worker["longest_wait_cpu_ms"] <= worker["longest_wait_ms"] + 1  # thread CPU ticks may round up
    # The worker's acks are in the file: each job it took is acked (status 5), not lost.
    assert run["queue_rows"] == 200 + 30 + 240


def test_sizes_report_peak_rss_per_size_and_the_slope(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--sizes", "100,250", "--acked-history", "0", "--ordered-ids", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["path"] == "batched"
    assert [size["entries"] for size in report["sizes"]] == [100, 250]
    for size in report["sizes"]:
        assert size["error"] == "" and 0 < size["baseline_rss_mb"] <= size["peak_rss_mb"] < 1024
    assert math.isfinite(report["slope_kb_per_1000"]) and math.isfinite(report["growth_slope_kb_per_1000"])
    # Each size ran alone (its own data, its own process), ids in failure order as asked.
    assert [len(full["runs"]) for full in report["reports"]] == [1, 1]
    assert all(full["runs"][0]["result"]["recovered_scene_ids_ascending"] for full in report["reports"])
    assert [full["scattered"] for full in report["reports"]] == [False, False]


def test_rss_slope_and_wait_summary() -> None:
    assert rss_slope([(1000, 10.0), (2000, 11.0), (3000, 12.0)]) == pytest.approx(1024.0)
    assert rss_slope([(50_000, 40.0)]) == 0.0
    assert summarize_waits([]) == (0.0, 0.0)
    waits = [float(n) for n in range(1, 201)]
    assert summarize_waits(waits) == (200.0, 198.0)


def test_large_dlq_keeps_the_window_and_plexsyncs_indexes_only(tmp_path: Path) -> None:
    dataset = bench.build_data_dir(tmp_path, 60, noise=940, acked_history=120)
    dlq = DeadLetterQueue(tmp_path)
    assert dlq.get_count() == 1000
    window = list(DlqWindow(dlq, dataset.start, dataset.end, ["PlexServerDown"]))
    scene_ids = [entry["scene_id"] for entry in window]
    assert sorted(scene_ids) == list(range(1, 61)) and scene_ids != sorted(scene_ids)  # scattered
    assert scene_ids == failure_order(60)  # the fixed seed: the same order every time
    conn = sqlite3.connect(tmp_path / "dlq.db")
    try:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        stamps = [row[0] for row in conn.execute("SELECT failed_at FROM dead_letters ORDER BY id")]
    finally:
        conn.close()
    assert indexes == {"idx_failed_at", "idx_scene_id"}
    assert stamps == sorted(stamps)  # appended in failure order, as PlexSync does
    conn = sqlite3.connect(tmp_path / "queue" / "data.db")
    try:
        acked = conn.execute("SELECT count(*), max(timestamp) FROM ack_queue_default WHERE status = 5").fetchone()
    finally:
        conn.close()
    assert acked[0] == 120 and acked[1] < dataset.start  # the history is older than every entry: it covers nothing


def test_the_per_entry_path_draws_its_progress_on_a_terminal(tmp_path: Path) -> None:
    """``bench``'s slow path shows the same bar as ``recover`` when stderr is a terminal (a pseudo-terminal here)."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "plexsync_recovery_plugin", "bench", "-q", "--entries", "30", "--paths", "per-entry",
             "--acked-history", "0", "--work-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, env=env, timeout=60, cwd=repo,
        )
    finally:
        os.close(follower)
    drawn = b""
    while True:
        try:
            piece = os.read(leader, 65536)
        except OSError:  # the terminal closed: everything was read
            break
        if not piece:
            break
        drawn += piece
    os.close(leader)
    assert done.returncode == 0, drawn
    assert b"30/30 entries 100%" in drawn  # the bar reached the end of the window


def test_the_floor_reads_decodes_and_writes_every_entry_of_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--floor", "--entries", "1500", "--acked-history", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["entries"], report["jobs"]) == (1500, 1500)  # the window only, one scene an entry, no gate
    steps = zip(report["read_seconds"], report["decode_seconds"], report["encode_seconds"], report["write_seconds"])
    assert [round(sum(run), 9) for run in steps] == [round(total, 9) for total in report["total_seconds"]]
    assert len(report["total_seconds"]) == 3


def test_the_floor_writes_a_job_per_scene_and_a_ledger_record_per_entry(tmp_path: Path) -> None:
    from plexsync_recovery_plugin.dev.bench import _one_run
    from plexsync_recovery_plugin.sync_queue.operations import QueueFile

    dataset = bench.build_data_dir(tmp_path, 1200, noise=300, acked_history=100)
    before = len(drained_scene_ids(tmp_path))
    entries, jobs, seconds = _one_run(tmp_path, dataset.start, dataset.end)
    assert (entries, jobs, len(seconds)) == (1200, 1200, 4)
    scenes = drained_scene_ids(tmp_path)
    assert len(scenes) - before == 1200 and set(range(1, 1201)) <= set(scenes)
    records = QueueFile(tmp_path / "queue").all_ledger_records()
    assert len(records) == 1200
    assert {record["scene_id"] for record in records} == set(range(1, 1201))
    assert all(record["queue_row_id"] is not None for record in records)  # each points at its scene's row


def drained_scene_ids(data_dir: Path) -> list[int]:
    """Scene ids of every ready row in the queue (persist-queue status 1), in row order."""
    import pickle

    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    try:
        return [pickle.loads(blob)["scene_id"] for (blob,) in
                conn.execute("SELECT data FROM ack_queue_default WHERE status = 1 ORDER BY _id")]
    finally:
        conn.close()


def test_the_decode_bench_prints_safe_loads_against_pickle_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--decode", "--entries", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["jobs"] == 40 and report["quick"] == 40  # realistic jobs all take the quick path
    assert set(report["groups"]) == {"lists of strings", "lists of dicts", "all"}
    for group in report["groups"].values():
        assert group["safe_us"] > 0 and group["pickle_us"] > 0
        assert group["ratio"] == pytest.approx(group["safe_us"] / group["pickle_us"], rel=0.02)
    assert main(["bench", "--decode", "--entries", "40"]) == 0
    assert "ratio" in capsys.readouterr().out
