"""Each task, run as Stash runs it, against loopback Plex and Stash and real PlexSync files."""

from __future__ import annotations

from plexsync_recovery_plugin.sync_queue.operations import make_job
from tests.cli.conftest import table_rows
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.stash_plugin.conftest import OUTAGE, PLEX_TOKEN, write_history


def _snapshot(data_dir):
    return {
        "dlq": table_rows(data_dir / "dlq.db", "dead_letters"),
        "queue": table_rows(data_dir / "queue" / "data.db", "ack_queue_default"),
        "ledger": table_rows(data_dir / "queue" / "data.db", "dead_letter_recoveries"),
        "state": (data_dir / "recovery_state.db").exists(),
        "history": (data_dir / "outage_history.json").read_bytes(),
    }


def test_preview_logs_each_entry_and_changes_nothing(run_plugin, data_dir, add_entry, queue, plex_server):
    write_history(data_dir, OUTAGE)
    would = add_entry(1, failed_at=WINDOW_START + 1)
    queued = add_entry(2, failed_at=WINDOW_START + 2)
    missing = add_entry(9, failed_at=WINDOW_START + 3)
    add_entry(3, failed_at=WINDOW_END + 60)  # after the outage: not judged
    queue.put(make_job(2, "metadata", {"title": "live"}))
    before = _snapshot(data_dir)

    run = run_plugin(mode="preview_last_outage")

    assert run.code == 0, run.stderr
    assert run.answer == {"output": "preview: would recover 1 of 3 DLQ entries (already queued 1, scene missing 1, stash error 0, plex down 0, failed 0)", "error": None}
    lines = run.texts("i")
    assert any(f"DLQ entry {would} (scene 1," in line and "would recover" in line for line in lines)
    assert any(f"DLQ entry {queued} (scene 2," in line and "already queued" in line for line in lines)
    assert any(f"DLQ entry {missing} (scene 9," in line and "scene missing" in line for line in lines)
    assert not any("(scene 3," in line for line in lines)
    assert run.texts("p")[-1] == "1.000"
    assert _snapshot(data_dir) == before  # nothing written: no job, no ledger row, no state file


def test_recover_requeues_the_last_outage(run_plugin, data_dir, add_entry, plex_server, stash_server):
    write_history(data_dir, (WINDOW_START - 7200, WINDOW_START - 3600), OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)
    add_entry(4, failed_at=WINDOW_START - 5000)  # in the older outage: not this task's
    add_entry(9, failed_at=WINDOW_START + 6)  # Stash no longer has scene 9

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 0, run.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]
    assert run.answer["output"] == "recovery: 1 job recovered; 0 windows pending"
    assert any("recovered 1 of 2 DLQ entries" in line and "scene missing 1" in line for line in run.texts("i"))
    assert [float(p) for p in run.texts("p")] == [0.0, 1.0, 1.0]  # the start, the one chunk (recovery_progress), the end
    assert table_rows(data_dir / "recovery_state.db", "pending_windows") == []


def test_recover_with_plex_down_keeps_the_window_pending_then_retry_recovers_it(
    run_plugin, data_dir, add_entry, plex_server
):
    write_history(data_dir, OUTAGE)
    add_entry(2, failed_at=WINDOW_START + 5)
    plex_server.set_mode("down")

    deferred = run_plugin(mode="recover_last_outage")

    assert deferred.code == 1
    assert "1 window pending" in deferred.answer["error"]
    assert any("stays pending" in line for line in deferred.texts("w"))
    assert drain(data_dir) == []

    plex_server.set_mode("up")
    retried = run_plugin(mode="retry_pending")

    assert retried.code == 0, retried.stderr
    assert retried.answer["output"] == "retry: 1 job recovered; 0 windows pending"
    assert [job["scene_id"] for job in drain(data_dir)] == [2]
    assert run_plugin(mode="retry_pending").answer["output"] == "nothing to retry"


def test_outage_report_summarizes_the_history_without_asking_plex_or_stash(
    run_plugin, data_dir, plex_server, stash_server
):
    write_history(data_dir, (WINDOW_START - 7200, WINDOW_START - 7200 + 600), (WINDOW_START, WINDOW_START + 300))

    run = run_plugin(mode="outage_report")

    assert run.code == 0, run.stderr
    summary = run.answer["output"]
    assert summary.startswith("2 outages; MTTR 7m 30s; MTBF 2h 00m 00s; downtime 15m 00s; availability ")
    assert any("(5m 00s)" in line for line in run.texts("i"))
    assert plex_server.request_count == 0 and stash_server.request_count == 0


def test_a_missing_plexsync_setting_is_one_clear_line(run_plugin, data_dir, add_entry, stash_server, plex_server):
    write_history(data_dir, OUTAGE)
    add_entry(1)
    stash_server.set_plugin_settings("Stash2Plex", {"plex_url": plex_server.url})  # no token

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 1
    errors = run.texts("e")
    assert len(errors) == 1 and "plex_token" in errors[0] and "Stash2Plex" in errors[0], run.stderr
    assert "Traceback" not in run.stderr and run.non_protocol_lines() == []
    assert drain(data_dir) == []


def test_this_plugins_own_setting_overrides_plexsyncs(run_plugin, data_dir, add_entry, stash_server, plex_server):
    write_history(data_dir, OUTAGE)
    add_entry(1)
    stash_server.set_plugin_settings("Stash2Plex", {"plex_url": "http://127.0.0.1:9", "plex_token": "wrong"})
    stash_server.set_plugin_settings("PlexSyncRecovery", {"plex_url": plex_server.url, "plex_token": PLEX_TOKEN})

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 0, run.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]


def test_no_closed_outage_and_an_unknown_mode(run_plugin, data_dir):
    write_history(data_dir, (WINDOW_START, None))  # still open
    assert run_plugin(mode="recover_last_outage").answer["output"] == "nothing to do: no closed outage recorded"

    unknown = run_plugin(mode="explode")
    assert unknown.code == 1
    assert unknown.texts("e") == [unknown.answer["error"]]
    assert "'explode'" in unknown.answer["error"] and "recover_last_outage" in unknown.answer["error"]


def test_secrets_appear_in_no_output_or_file(run_plugin, data_dir, add_entry, plex_server, stash_server):
    from tests.stash_plugin.conftest import COOKIE

    write_history(data_dir, OUTAGE)
    add_entry(1)
    plex_server.set_mode("down")
    runs = [run_plugin(mode=mode) for mode in ("preview_last_outage", "recover_last_outage", "outage_report")]
    runs.append(run_plugin(hook="Scene.Update.Post"))
    stash_server.set_plugin_settings("Stash2Plex", {"plex_url": f"http://{PLEX_TOKEN}:x/", "plex_token": PLEX_TOKEN})
    runs.append(run_plugin(mode="recover_last_outage"))  # a bad URL holding the token is named masked

    assert "***" in runs[-1].answer["error"]
    for run in runs:
        for secret in (PLEX_TOKEN, COOKIE):
            assert secret not in run.stdout and secret not in run.stderr
    for path in data_dir.parent.parent.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert PLEX_TOKEN.encode() not in content and COOKIE.encode() not in content, path
