"""``plexsync-recovery forget``: the plugin's own state goes, after asking; PlexSync's files stay byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from plexsync_recovery_plugin.state import PendingWindows, recovery_lock
from tests.cli.conftest import REPO, assert_one_error_line, table_rows
from tests.conftest import WINDOW_START


def _with_state(data_dir, plugin, add_entry, plexsync_dir):
    """PlexSync's files (a DLQ, queue rows, a history) and the plugin's state (ledger, pending window, lock)."""
    plexsync_dir.write_outage_history([{"started_at": WINDOW_START, "ended_at": WINDOW_START + 60}])
    add_entry(1, failed_at=WINDOW_START + 5)
    plugin.recover(WINDOW_START, WINDOW_START + 60)
    plugin.close()
    with recovery_lock(data_dir):
        PendingWindows(data_dir).add(WINDOW_START + 600, WINDOW_START + 660)
    assert table_rows(data_dir / "queue" / "data.db", "dead_letter_recoveries")


def _plexsync(data_dir):
    return ((data_dir / "dlq.db").read_bytes(), (data_dir / "outage_history.json").read_bytes(),
            table_rows(data_dir / "queue" / "data.db", "ack_queue_default"))


def _forget(cli_env, data_dir, *flags, answer=None):
    return subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", "forget", "--data-dir", str(data_dir),
                           *flags], input=answer, env=cli_env, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_it_asks_and_only_yes_removes(cli_env, data_dir, plugin, add_entry, plexsync_dir):
    _with_state(data_dir, plugin, add_entry, plexsync_dir)
    before = _plexsync(data_dir)

    for answer in ("n\n", ""):  # no, and no answer at all
        kept = _forget(cli_env, data_dir, answer=answer)
        assert kept.returncode == 1
        assert "recovery_state.db" in kept.stderr and "dead_letter_recoveries" in kept.stderr  # what it would remove
        assert_one_error_line(kept.stderr, "nothing removed")
        assert (data_dir / "recovery_state.db").exists()

    done = _forget(cli_env, data_dir, answer="y\n")

    assert done.returncode == 0, done.stderr
    assert f"removed: {data_dir / 'recovery_state.db'}" in done.stdout
    assert "removed: table dead_letter_recoveries in queue/data.db (1 row)" in done.stdout
    assert sorted(path.name for path in data_dir.iterdir()) == ["dlq.db", "outage_history.json", "queue"]
    assert table_rows(data_dir / "queue" / "data.db", "dead_letter_recoveries") == []
    assert _plexsync(data_dir) == before


def test_yes_does_not_ask_and_json_says_what_went(cli_env, data_dir, plugin, add_entry, plexsync_dir):
    _with_state(data_dir, plugin, add_entry, plexsync_dir)

    done = _forget(cli_env, data_dir, "--yes", "--json")

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["tables"] == {"dead_letter_recoveries": 1}
    assert {p.rsplit("/", 1)[1] for p in answer["removed"]} == {"recovery_state.db", "recovery.lock"}
    assert "Remove them?" not in done.stderr

    again = _forget(cli_env, data_dir, "--yes")
    assert again.returncode == 0 and "nothing to forget" in again.stdout


def test_a_recovery_holding_the_lock_keeps_everything(cli_env, data_dir, plugin, add_entry, plexsync_dir):
    _with_state(data_dir, plugin, add_entry, plexsync_dir)
    held, release = threading.Event(), threading.Event()

    def hold():
        with recovery_lock(data_dir):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        busy = _forget(cli_env, data_dir, "--yes", "--lock-wait", "0.1")
    finally:
        release.set()
        holder.join()

    assert busy.returncode == 1
    assert_one_error_line(busy.stderr, "nothing removed", "recovery.lock is held by pid")
    assert (data_dir / "recovery_state.db").exists()
    assert table_rows(data_dir / "queue" / "data.db", "dead_letter_recoveries")


def test_a_folder_that_is_not_plexsyncs_is_refused(cli_env, tmp_path):
    refused = _forget(cli_env, tmp_path, "--yes")
    assert refused.returncode == 2
    assert_one_error_line(refused.stderr, "is not PlexSync's")
