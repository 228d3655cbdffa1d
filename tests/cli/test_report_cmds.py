"""``plexsync-recovery outages`` and ``dlq``: the figures, the tables, the JSON, and read-only behaviour."""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.formatting import iso_time
from plexsync_recovery_plugin.outages import summarize_outages
from tests.cli.conftest import assert_one_error_line
from tests.conftest import WINDOW_END, WINDOW_START

HOUR = 3600.0


def _record(start, end=None, jobs=0):
    return {
        "started_at": start,
        "ended_at": end,
        "duration": None if end is None else end - start,
        "jobs_affected": jobs,
    }


def test_summary_figures():
    records = [_record(0, 600), _record(10 * HOUR, 10 * HOUR + 1200), _record(30 * HOUR, 30 * HOUR + 300)]
    summary = summarize_outages(records, now=40 * HOUR)
    assert summary.count == 3 and not summary.ongoing
    assert summary.mttr_seconds == pytest.approx(700.0)  # (600 + 1200 + 300) / 3
    assert summary.mtbf_seconds == pytest.approx(15 * HOUR)  # (10 h + 20 h) / 2
    assert summary.downtime_seconds == pytest.approx(2100.0)
    assert summary.availability_percent == pytest.approx(100 * (1 - 2100 / (40 * HOUR)))


def test_summary_counts_an_ongoing_outage_up_to_now_but_not_in_mttr():
    summary = summarize_outages([_record(0, 100), _record(HOUR)], now=2 * HOUR)
    assert summary.ongoing
    assert summary.mttr_seconds == pytest.approx(100.0)
    assert summary.downtime_seconds == pytest.approx(100.0 + HOUR)
    assert summary.availability_percent == pytest.approx(100 * (1 - (HOUR + 100) / (2 * HOUR)))


def test_summary_of_one_or_no_outage():
    one = summarize_outages([_record(0, 60)], now=600)
    assert one.mtbf_seconds is None and one.mttr_seconds == 60.0
    assert one.availability_percent == pytest.approx(90.0)
    none = summarize_outages([], now=600)
    assert (none.count, none.mttr_seconds, none.mtbf_seconds, none.availability_percent) == (0, None, None, None)


def test_outages_table(capsys, data_dir):
    history = [_record(WINDOW_START, WINDOW_END, jobs=7), _record(WINDOW_START + 86400)]
    (data_dir / "outage_history.json").write_text(json.dumps(history))
    assert main(["outages", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["source", "start", "end", "duration", "jobs", "affected"]
    assert lines[2].split() == ["plexsync", "2026-02-15", "19:00:00Z", "2026-02-15", "19:30:00Z", "30m", "00s", "7"]
    assert "ongoing" in lines[3] and "so far" in lines[3] and lines[3].startswith("plexsync")
    summary = {line.split("  ")[0]: line.split("  ")[-1].strip() for line in lines[5:]}
    assert summary["outages"] == "2 (one ongoing)"
    assert summary["MTTR (mean outage duration)"] == "30m 00s"
    assert summary["MTBF (mean time between starts)"] == "1d 00h 00m"
    assert summary["availability since 2026-02-15 19:00:00Z"].endswith("%")


def test_outages_json_in_a_subprocess(run_cli, data_dir):
    history = [_record(WINDOW_START, WINDOW_END, jobs=2)]
    (data_dir / "outage_history.json").write_text(json.dumps(history))
    proc = run_cli("outages", "--json", env={"STASH_PLUGIN_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["outages"] == [{
        **history[0], "started_at": "2026-02-15T19:00:00Z", "ended_at": "2026-02-15T19:30:00Z",
        "source": "plexsync", "ongoing": False, "records": 1,
    }]
    assert report["summary"]["count"] == 1 and report["summary"]["mtbf_seconds"] is None
    assert report["summary"]["mttr_seconds"] == 1800.0


def test_outages_without_history(capsys, data_dir):
    assert main(["outages", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith("No outage recorded")


@pytest.fixture
def filled_dlq(add_entry):
    """Three days of entries: two PlexServerDown in the window, one PlexAuthError, one the next day."""
    ids = {
        "down_1": add_entry(1, failed_at=WINDOW_START + 10),
        "down_2": add_entry(2, failed_at=WINDOW_START + 20),
        "auth": add_entry(3, failed_at=WINDOW_START + 30, error_type="PlexAuthError"),
        "next_day": add_entry(4, failed_at=WINDOW_START + 86400),
    }
    return ids


def test_dlq_counts_and_window_table(capsys, data_dir, filled_dlq):
    code = main(["dlq", "--data-dir", str(data_dir), "--start", "2026-02-15T19:00:00Z", "--end", "2026-02-15T19:30:00Z"])
    out = capsys.readouterr().out
    assert code == 0
    blocks = out.split("\n\n")
    assert [line.split() for line in blocks[0].splitlines()[3:]] == [
        ["PlexAuthError", "1"],
        ["PlexServerDown", "3"],
        ["total", "4"],
    ]
    assert [line.split() for line in blocks[1].splitlines()[3:]] == [["2026-02-15", "3"], ["2026-02-16", "1"]]
    listed = [line.split()[0] for line in blocks[2].splitlines()[3:]]
    assert listed == [str(filled_dlq["down_1"]), str(filled_dlq["down_2"]), str(filled_dlq["auth"])]
    assert all(line.rstrip().endswith("boom") for line in blocks[2].splitlines()[3:])


def test_dlq_json_with_error_type_filter(run_cli, data_dir, filled_dlq):
    proc = run_cli(
        "dlq", "--json", "--data-dir", data_dir, "--error-type", "PlexServerDown",
        "--start", WINDOW_START, "--end", WINDOW_END,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["by_error_type"] == {"PlexAuthError": 1, "PlexServerDown": 3}
    assert report["by_day"] == [{"day": "2026-02-15", "count": 2}, {"day": "2026-02-16", "count": 1}]
    assert report["entries_in_window"] == 2
    assert [entry["id"] for entry in report["entries"]] == [filled_dlq["down_1"], filled_dlq["down_2"]]
    assert report["entries"][0]["error_message"] == "boom"


def test_dlq_limit_truncates_the_listing(capsys, data_dir, filled_dlq):
    assert main(["dlq", "--data-dir", str(data_dir), "--start", str(WINDOW_START), "--end", str(WINDOW_END),
                 "--limit", "1"]) == 0
    assert "... and 2 more" in capsys.readouterr().out


def test_dlq_long_messages_are_cut_to_one_line(capsys, data_dir, plexsync_dir):
    from plexsync_recovery_plugin.sync_queue.operations import make_job

    plexsync_dir.add_dead_letter(make_job(5, "metadata", {}), error_type="RuntimeError",
                                 error_message="first line\n" + "x" * 200, retry_count=1, failed_at=WINDOW_START + 5)
    assert main(["dlq", "--data-dir", str(data_dir), "--start", str(WINDOW_START), "--end", str(WINDOW_END)]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert "first line xxx" in row and row.endswith("...") and "x" * 100 not in row


def test_dlq_report_never_creates_the_dlq(capsys, data_dir):
    assert main(["dlq", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith("No DLQ at")
    assert list(data_dir.iterdir()) == [data_dir / "queue"]


def test_dlq_file_that_is_not_sqlite_is_one_line(run_cli, data_dir):
    (data_dir / "dlq.db").write_bytes(b"this is not a database, just text\n" * 20)
    proc = run_cli("dlq", "--data-dir", data_dir)
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr, str(data_dir / "dlq.db"), "not a database")


def _dlq_files(data_dir):
    """dlq.db and any journal beside it: name -> (mtime, bytes)."""
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(data_dir.glob("dlq.db*"))}


def test_dlq_report_changes_no_byte_and_adds_no_file(run_cli, data_dir, filled_dlq):
    files_before = sorted(path.name for path in data_dir.rglob("*"))
    dlq_before = _dlq_files(data_dir)
    for argv in (["dlq"], ["dlq", "--start", str(WINDOW_START), "--end", str(WINDOW_END), "--json"]):
        proc = run_cli(*argv, "--data-dir", data_dir)
        assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["entries_in_window"] == 3
    assert _dlq_files(data_dir) == dlq_before  # same bytes, same mtime: no index, no pragma, no journal
    assert sorted(path.name for path in data_dir.rglob("*")) == files_before


def test_outages_shows_both_sources_labelled_and_counts_an_overlap_once(capsys, data_dir):
    from plexsync_recovery_plugin.outages import DetectedOutages

    # PlexSync's breaker reopened twice during one outage; the watch daemon saw it too, and one more.
    history = [_record(WINDOW_START + 60), _record(WINDOW_START + 120), _record(WINDOW_START + 180, WINDOW_END, jobs=4)]
    (data_dir / "outage_history.json").write_text(json.dumps(history))
    detected = DetectedOutages(data_dir)
    detected.open(WINDOW_START, "last_healthy_probe")
    detected.close(WINDOW_START, WINDOW_END - 30, 3, "last_healthy_probe")
    detected.open(WINDOW_START + HOUR, "last_healthy_probe")
    detected.close(WINDOW_START + HOUR, WINDOW_START + HOUR + 600, 0, "last_healthy_probe")

    assert main(["outages", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["watch", "plexsync", "watch"]
    assert lines[3].split()[1:5] == ["2026-02-15", "19:01:00Z", "2026-02-15", "19:30:00Z"]

    assert main(["outages", "--json", "--data-dir", str(data_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(o["source"], o["started_at"], o["ended_at"], o["records"]) for o in report["outages"]] == [
        ("watch", iso_time(WINDOW_START), iso_time(WINDOW_END - 30), 1),
        ("plexsync", iso_time(WINDOW_START + 60), iso_time(WINDOW_END), 3),
        ("watch", iso_time(WINDOW_START + HOUR), iso_time(WINDOW_START + HOUR + 600), 1),
    ]
    summary = report["summary"]
    assert summary["count"] == 2 and summary["ongoing"] is False
    assert summary["downtime_seconds"] == pytest.approx(1800 + 600)
    assert summary["downtime_seconds"] <= summary["span_seconds"]


def test_outages_report_never_creates_the_state_file(capsys, data_dir):
    before = sorted(data_dir.iterdir())
    assert main(["outages", "--data-dir", str(data_dir)]) == 0
    assert sorted(data_dir.iterdir()) == before
