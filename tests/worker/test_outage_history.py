"""``OutageHistory``: PlexSync's history file, and the signals it sends."""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.signals import outage_ended, outage_started
from plexsync_recovery_plugin.worker.outage_history import MAX_RECORDS, OutageHistory


@pytest.fixture
def history(data_dir):
    return OutageHistory(data_dir)


@pytest.fixture
def ended(mocker):
    receiver = mocker.Mock(name="on_outage_ended")
    with outage_ended.connected_to(receiver):
        yield receiver


def test_start_then_end_persists_the_record_and_sends_the_window(history, ended, data_dir):
    started = []
    with outage_started.connected_to(lambda sender, **kw: started.append((sender, kw))):
        history.record_outage_start(1000.0)
    assert started == [(history, {"start": 1000.0})]
    assert history.get_current_outage()["started_at"] == 1000.0
    history.record_outage_end(1090.5, jobs_affected=7)
    ended.assert_called_once_with(history, start=1000.0, end=1090.5)
    on_disk = json.loads((data_dir / "outage_history.json").read_text())
    assert on_disk == [{"started_at": 1000.0, "ended_at": 1090.5, "duration": 90.5, "jobs_affected": 7}]
    assert history.get_current_outage() is None


def test_end_without_an_open_outage_sends_nothing(history, ended):
    assert history.record_outage_end(50.0) is None
    history.record_outage_start(60.0)
    history.record_outage_end(70.0)
    assert history.record_outage_end(80.0) is None
    assert ended.call_count == 1


def test_second_start_while_open_keeps_the_first(history):
    history.record_outage_start(10.0)
    assert history.record_outage_start(20.0) is None
    assert [record["started_at"] for record in history.get_history()] == [10.0]


def test_history_keeps_the_newest_thirty(history):
    for index in range(MAX_RECORDS + 5):
        history.record_outage_start(index * 100.0)
        history.record_outage_end(index * 100.0 + 10)
    records = history.get_history()
    assert len(records) == MAX_RECORDS
    assert records[0]["started_at"] == 500.0


def test_write_is_atomic_and_leaves_no_temp_files(history, data_dir):
    history.record_outage_start(1.0)
    history.record_outage_end(2.0)
    assert sorted(path.name for path in data_dir.iterdir()) == ["outage_history.json"]


@pytest.mark.parametrize(
    "garbage",
    [
        '[{"started_at": 1.0, "ended_',
        "not json",
        '{"a": 1}',
        "[1, 2]",
        '[{"started_at": 1.0, "ended_at": "soon"}]',
        '[{"started_at": NaN, "ended_at": null}]',
        '[{"started_at": true, "ended_at": null}]',
    ],
)
def test_unreadable_history_reads_empty_and_is_kept_aside_by_the_next_write(history, data_dir, caplog, garbage):
    path = data_dir / "outage_history.json"
    path.write_text(garbage)
    assert history.get_history() == []
    assert history.get_current_outage() is None
    assert path.read_text() == garbage  # a reader never moves a file another process may be writing
    assert "unreadable" in caplog.text
    history.record_outage_start(5.0)
    backups = list(data_dir.glob("outage_history.json.corrupt-*"))
    assert [backup.read_text() for backup in backups] == [garbage]
    assert history.get_current_outage()["started_at"] == 5.0


def test_rewrites_keep_the_files_mode(history, data_dir):
    path = data_dir / "outage_history.json"
    history.record_outage_start(1.0)
    path.chmod(0o644)
    history.record_outage_end(2.0)
    assert path.stat().st_mode & 0o777 == 0o644


def test_receiver_that_raises_does_not_break_the_tracker(history, ended):
    def broken(sender, **kwargs):
        raise RuntimeError("bad subscriber")

    with outage_ended.connected_to(broken):
        history.record_outage_start(1.0)
        closed = history.record_outage_end(2.0)
    assert closed["ended_at"] == 2.0
    ended.assert_called_once()
