"""Outages closed by another process fire ``outage_ended`` once, and never again after a restart."""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.signals import outage_ended
from plexsync_recovery_plugin.worker.history_follower import HistoryFollower


def write_history(data_dir, records):
    (data_dir / "outage_history.json").write_text(json.dumps(records))


def closed(start, end):
    return {"started_at": start, "ended_at": end, "duration": end - start, "jobs_affected": 0}


@pytest.fixture
def sent():
    windows = []

    def receiver(sender, *, start, end, **kwargs):
        windows.append((start, end))

    with outage_ended.connected_to(receiver):
        yield windows


def test_first_run_notes_past_outages_without_sending(data_dir, sent):
    write_history(data_dir, [closed(10.0, 20.0), closed(30.0, 40.0)])
    follower = HistoryFollower(data_dir)
    follower.start()
    assert follower.poll() == []
    assert sent == []


def test_outage_that_gains_an_end_is_sent_once(data_dir, sent):
    write_history(data_dir, [{"started_at": 50.0, "ended_at": None, "duration": None, "jobs_affected": 0}])
    follower = HistoryFollower(data_dir)
    follower.start()
    follower.poll()
    write_history(data_dir, [closed(50.0, 80.0)])
    follower.poll()
    follower.poll()
    assert sent == [(50.0, 80.0)]


def test_restart_never_sends_a_handled_outage_again(data_dir, sent):
    follower = HistoryFollower(data_dir)
    follower.start()
    write_history(data_dir, [closed(50.0, 80.0)])
    follower.poll()
    restarted = HistoryFollower(data_dir)
    restarted.start()
    write_history(data_dir, [closed(50.0, 80.0), closed(100.0, 130.0)])
    restarted.poll()
    assert sent == [(50.0, 80.0), (100.0, 130.0)]


def test_outage_that_ended_while_the_daemon_was_stopped_is_sent_at_restart(data_dir, sent):
    HistoryFollower(data_dir).start()  # the daemon ran once, with no history
    write_history(data_dir, [closed(5.0, 9.0)])  # written while it was stopped
    follower = HistoryFollower(data_dir)
    follower.start()
    follower.poll()
    assert sent == [(5.0, 9.0)]


def test_outages_marked_handled_are_not_sent(data_dir, sent):
    follower = HistoryFollower(data_dir)
    follower.start()
    write_history(data_dir, [closed(50.0, 80.0)])
    follower.mark_handled(50.0, 80.0)  # recovered by another door (a Stash task) before the follower looked
    follower.poll()
    assert sent == []


def test_a_record_with_a_bad_end_time_does_not_stop_the_follower(data_dir, sent):
    write_history(data_dir, [{"started_at": 10.0, "ended_at": "soon", "duration": None, "jobs_affected": 0}])
    follower = HistoryFollower(data_dir)
    follower.start()
    assert follower.poll() == []
    write_history(data_dir, [closed(10.0, 20.0)])
    follower.poll()
    assert sent == [(10.0, 20.0)]
