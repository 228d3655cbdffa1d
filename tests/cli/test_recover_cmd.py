"""``plexsync-recovery recover``: real recoveries against the loopback servers, deferral, dry runs."""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.formatting import iso_time
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.operations import enqueue
from plexsync_recovery_plugin.testing import PlexTestServer
from tests.cli.conftest import assert_one_error_line, server_flags, table_rows
from tests.conftest import WINDOW_END, WINDOW_START, drain

WINDOW = ["--start", "2026-02-15T19:00:00Z", "--end", "2026-02-15 19:30:00"]  # WINDOW_START..WINDOW_END


def test_window_flags_cover_the_fixture_window():
    from plexsync_recovery_plugin.cli.settings import parse_window

    assert parse_window(WINDOW[1], WINDOW[3]) == (WINDOW_START, WINDOW_END)


def test_recover_requeues_the_window_and_reports_json(run_cli, data_dir, add_entry, plex_server, stash_server):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_END)
    add_entry(3, failed_at=WINDOW_END + 1)  # after the window
    add_entry(2, error_type="PlexAuthError")  # permanent: never recovered
    add_entry(9)  # Stash no longer has scene 9
    proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--json", *server_flags(plex_server, stash_server))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["start"], report["end"]) == (iso_time(WINDOW_START), iso_time(WINDOW_END))
    assert (report["total_dlq_entries"], report["recovered"], report["skipped_scene_missing"]) == (3, 2, 1)
    assert report["deferred"] is False and report["pending_windows"] == []
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2]


def test_recover_table_in_process(capsys, data_dir, add_entry, plex_server, stash_server):
    add_entry(1)
    add_entry(3)
    code = main(["recover", *WINDOW, "--data-dir", str(data_dir), *server_flags(plex_server, stash_server)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Recovery of 2026-02-15 19:00:00Z .. 2026-02-15 19:30:00Z")
    assert lines[1].split() == ["outcome", "entries"]
    counts = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in lines[3:10]}
    assert counts["recovered"] == "2" and counts["DLQ entries in window"] == "2" and counts["failed"] == "0"
    assert "re-queued scenes: 1, 3" in out


def test_plex_down_defers_the_window_and_exits_1(run_cli, data_dir, add_entry, plex_server, stash_server):
    add_entry(1)
    plex_server.set_mode("down")
    proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--json", *server_flags(plex_server, stash_server))
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr, "did not answer", plex_server.url, "stays pending")
    report = json.loads(proc.stdout)
    assert (report["skipped_plex_down"], report["deferred"]) == (1, True)
    assert drain(data_dir) == []
    assert PendingWindows(data_dir).windows() == [(WINDOW_START, WINDOW_END)]


def _snapshot(data_dir):
    return {
        "dlq": table_rows(data_dir / "dlq.db", "dead_letters"),
        "queue": table_rows(data_dir / "queue" / "data.db", "ack_queue_default"),
        "ledger": table_rows(data_dir / "queue" / "data.db", "dead_letter_recoveries"),
        "pending": PendingWindows(data_dir).windows(),
        "queue_tables": sorted(row[1] for row in table_rows(data_dir / "queue" / "data.db", "sqlite_master")),
    }


def test_dry_run_shows_each_entry_and_changes_nothing(capsys, data_dir, dlq, queue, add_entry, plexsync_dir,
                                                      plex_server, stash_server):
    would = add_entry(1, failed_at=WINDOW_START + 1)
    queued = add_entry(2, failed_at=WINDOW_START + 2)
    missing = add_entry(9, failed_at=WINDOW_START + 3)
    corrupt = plexsync_dir.add_dead_letter({}, scene_id=None, job_data=b"\x00\xff", error_message="bad",
                                           failed_at="2026-02-15 19:00:04")
    enqueue(queue, 2, "metadata", {"title": "already there"})
    before = _snapshot(data_dir)
    assert len(before["dlq"]) == 4 and len(before["queue"]) == 1

    code = main(["recover", *WINDOW, "--dry-run", "--data-dir", str(data_dir), *server_flags(plex_server, stash_server)])
    captured = capsys.readouterr()
    assert code == 1  # the corrupt entry would fail
    assert_one_error_line(captured.err, "1 entry failed")
    outcomes = {int(line.split()[0]): line for line in captured.out.splitlines() if line.strip()[:1].isdigit()}
    assert "would recover" in outcomes[would]
    assert "already queued" in outcomes[queued]
    assert "scene missing" in outcomes[missing]
    assert "failed" in outcomes[corrupt]
    assert _snapshot(data_dir) == before


def test_dry_run_of_an_empty_window_has_nothing_to_do(capsys, data_dir, add_entry):
    add_entry(1, failed_at=WINDOW_END + 60)
    code = main(["recover", *WINDOW, "--dry-run", "--data-dir", str(data_dir), "--plex-url", "http://127.0.0.1:9"])
    assert code == 0
    assert capsys.readouterr().out.startswith("Nothing to do: no PlexServerDown or outage PlexTemporaryError entry")


@pytest.mark.parametrize("flags, selected", [
    (["--no-outage-casualties"], "no PlexServerDown entry"),
    (["--include-optional"], "no PlexServerDown or PlexTemporaryError or PlexNotFound entry"),
])
def test_nothing_to_do_names_what_was_selected(capsys, data_dir, add_entry, flags, selected):
    add_entry(1, failed_at=WINDOW_END + 60)
    code = main(["recover", *WINDOW, "--dry-run", *flags, "--data-dir", str(data_dir), "--plex-url", "http://127.0.0.1:9"])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"Nothing to do: {selected} in the DLQ")


def test_dry_run_selects_the_same_whole_second_window_as_a_real_run(capsys, data_dir, add_entry, plex_server,
                                                                   stash_server):
    entry = add_entry(3, failed_at=WINDOW_START)  # whole seconds, as PlexSync stores them
    fractional = ["--start", str(WINDOW_START + 0.4), "--end", str(WINDOW_START + 30.6)]
    flags = ["--data-dir", str(data_dir), "--json", *server_flags(plex_server, stash_server)]
    assert main(["recover", *fractional, "--dry-run", *flags]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert main(["recover", *fractional, *flags]) == 0
    real = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in dry["entries"]] == [entry]
    searched = {"start": iso_time(WINDOW_START), "end": iso_time(WINDOW_START + 31)}
    assert dry["searched"] == real["searched"] == searched
    assert (dry["start"], dry["end"]) == (real["start"], real["end"]) == (iso_time(WINDOW_START), iso_time(WINDOW_START + 30))
    assert real["recovered_scene_ids"] == [3]


def test_last_outage_picks_the_newest_closed_record(capsys, data_dir, add_entry):
    newest = (WINDOW_START + 3600, WINDOW_START + 3700)
    history = [
        {"started_at": WINDOW_START, "ended_at": WINDOW_END, "duration": 1800.0, "jobs_affected": 1},
        {"started_at": newest[0], "ended_at": newest[1], "duration": 100.0, "jobs_affected": 1},
        {"started_at": WINDOW_START + 7200, "ended_at": None, "duration": None, "jobs_affected": 0},
    ]
    (data_dir / "outage_history.json").write_text(json.dumps(history))
    add_entry(1, failed_at=WINDOW_START + 60)  # in the older outage
    inside = add_entry(2, failed_at=newest[0] + 50)
    with PlexTestServer(initial_mode="down") as plex:  # a port that refuses: every entry is "plex down"
        code = main(["recover", "--last-outage", "--dry-run", "--json", "--data-dir", str(data_dir),
                     "--plex-url", plex.url])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (report["start"], report["end"]) == tuple(map(iso_time, newest))
    assert [(row["id"], row["outcome"]) for row in report["entries"]] == [(inside, "plex down")]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--start", "2026-13-45T00:00:00", "--end", "1771183800"], "'2026-13-45T00:00:00'"),
        (["--start", "1771183800", "--end", "yesterday"], "'yesterday'"),
        (["--start", "1771183800", "--end", "1771182000"], "is after"),
        (["--start", "1771183800"], "go together"),
        (["--last-outage", "--start", "1", "--end", "2"], "not both"),
        ([], "--last-outage"),
    ],
)
def test_bad_window_is_a_usage_error(capsys, data_dir, flags, named):
    assert main(["recover", "--data-dir", str(data_dir), *flags]) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, named)
    assert captured.out == ""


def test_bad_time_in_a_subprocess_is_one_line(run_cli, data_dir):
    proc = run_cli("recover", "--start", "15/02/2026", "--end", "1771183800", "--data-dir", data_dir)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "'15/02/2026'", "UTC")
    assert len(proc.stderr.splitlines()) == 1


def test_include_optional_adds_the_optional_error_types(capsys, data_dir, add_entry):
    optional = add_entry(1, error_type="PlexNotFound")
    with PlexTestServer(initial_mode="down") as plex:
        base = ["recover", *WINDOW, "--dry-run", "--json", "--data-dir", str(data_dir), "--plex-url", plex.url]
        assert main(base) == 0
        assert json.loads(capsys.readouterr().out)["total_dlq_entries"] == 0
        assert main([*base, "--include-optional"]) == 1  # found, but Plex is down
        report = json.loads(capsys.readouterr().out)
    assert [(row["id"], row["outcome"]) for row in report["entries"]] == [(optional, "plex down")]


def test_dry_run_in_a_subprocess_leaves_the_dlq_file_as_it_was(run_cli, data_dir, add_entry, plex_server,
                                                               stash_server):
    add_entry(1, failed_at=WINDOW_START + 1)
    add_entry(2, failed_at=WINDOW_START + 2, error_type="PlexAuthError")
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in data_dir.glob("dlq.db*")}
    proc = run_cli("recover", *WINDOW, "--dry-run", "--json", "--data-dir", data_dir,
                   *server_flags(plex_server, stash_server))
    assert proc.returncode == 0, proc.stderr
    assert [entry["id"] for entry in json.loads(proc.stdout)["entries"]] == [1]
    after = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in data_dir.glob("dlq.db*")}
    assert after == before and list(after) == ["dlq.db"]  # no index added, no -journal/-wal/-shm left


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
@pytest.mark.parametrize("token", ["wrong-token-1234", None])
def test_a_rejected_plex_token_fails_fast_with_exit_2(capsys, data_dir, add_entry, plex_server, stash_server,
                                                      dry_run, token):
    add_entry(1)
    token_flags = ["--plex-token", token] if token else []
    code = main(["recover", *WINDOW, *dry_run, "--data-dir", str(data_dir), "--plex-url", plex_server.url,
                 *token_flags, "--stash-url", stash_server.url])
    captured = capsys.readouterr()
    assert code == 2
    assert_one_error_line(captured.err, plex_server.url, "PLEX_TOKEN", "--plex-token")
    assert captured.out == "" and (token is None or token not in captured.err)
    assert drain(data_dir) == [] and PendingWindows(data_dir).windows() == []
