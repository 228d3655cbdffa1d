"""``plexsync-recovery bench``: a small run through the command line, both paths, sane report.

No timing is asserted: the bench is for measuring, not for failing tests on a busy machine.
Budget: about 4 s (two worker processes start and import plexapi/stashapi).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plexsync_recovery_plugin import bench
from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
from plexsync_recovery_plugin.sync_queue.dlq_window import DlqWindow
from plexsync_recovery_plugin.sync_queue.operations import get_queued_scene_ids


def test_bench_json_reports_both_paths_with_the_same_result(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--entries", "200", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)

    assert (report["entries"], report["noise"], report["deleted"], report["queued"]) == (200, 200, 20, 20)
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
        assert run["queue_rows"] == 180  # 20 queued before, 160 recovered
    batched, per_entry = report["runs"]
    assert batched["result"] == per_entry["result"]
    assert report["same_result"] is True
    assert report["ratio"] == pytest.approx(per_entry["seconds"] / batched["seconds"])
    # Each path asked Stash its own way: a range query per chunk, or one findScene per candidate scene.
    assert batched["stash_requests"].get("findScene", 0) == 0 and batched["stash_requests"]["findScenes"] >= 1
    assert per_entry["stash_requests"]["findScene"] == 180 and "findScenes" not in per_entry["stash_requests"]


def test_bench_table_names_each_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--entries", "30", "--paths", "batched"]) == 0
    out = capsys.readouterr().out
    assert "recovery of 30 in-window entries" in out
    [row] = [line for line in out.splitlines() if line.split()[:1] == ["batched"]]
    assert row.split()[1] == "30" and row.split()[-1] == "ok"
    assert "per-entry" not in out.split("same result")[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["bench", "--entries", "0"], "'0'"),
        (["bench", "--entries", "many"], "'many'"),
        (["bench", "--paths", "batched,sideways"], "'sideways'"),
        (["bench", "--paths", "batched,batched"], "'batched,batched'"),
        (["bench", "--window-query", "--rows", "10", "--window-rows", "11"], "11"),
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
