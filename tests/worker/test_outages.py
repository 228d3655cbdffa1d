"""PlexSync's history shapes read as the outages they mean, in the follower, ``--last-outage`` and ``outages``.

PlexSync's breaker writes a new open record at each reopen from half-open and closes only
the newest; its recovery scheduler may then close the older open record as well. The shapes
below are the ones those two produce.
"""

from __future__ import annotations

import json

import pytest

from plexsync_recovery_plugin.cli.commands import last_closed_outage
from plexsync_recovery_plugin.outages import Outage, merged_outages, summarize_outages, uncovered_windows
from plexsync_recovery_plugin.signals import outage_ended
from plexsync_recovery_plugin.worker.history_follower import HistoryFollower
from plexsync_recovery_plugin.worker.outage_history import MAX_RECORDS

T1, T2, T3, T4 = 1000.0, 1060.0, 1120.0, 1150.5


def rec(start, end=None, jobs=0):
    return {"started_at": start, "ended_at": end, "duration": None if end is None else end - start, "jobs_affected": jobs}


#: The breaker opened at T1, reopened from half-open at T2 and T3, and closed at T4.
REOPENED = [rec(T1), rec(T2), rec(T3, T4)]
#: The same after the recovery scheduler closed the newest remaining open record (T2) too.
DOUBLE_CLOSED = [rec(T1), rec(T2, T4 + 0.01), rec(T3, T4)]


def write(data_dir, records):
    (data_dir / "outage_history.json").write_text(json.dumps(records))


@pytest.fixture
def sent():
    windows = []
    with outage_ended.connected_to(lambda sender, *, start, end, **kw: windows.append((start, end))):
        yield windows


def test_a_run_of_open_records_closed_by_a_later_one_is_one_outage():
    assert merged_outages(REOPENED) == [Outage(T1, T4, records=3)]


def test_overlapping_closed_records_are_one_outage():
    assert merged_outages(DOUBLE_CLOSED) == [Outage(T1, T4 + 0.01, records=3)]


def test_only_a_trailing_run_of_open_records_is_ongoing():
    outages = merged_outages([rec(T1), rec(T2, T3), rec(5000.0), rec(5060.0)])
    assert outages == [Outage(T1, T3, records=2), Outage(5000.0, None, records=2)]
    assert [o.ongoing for o in outages] == [False, True]


def test_separate_outages_stay_separate_and_jobs_add_up():
    assert merged_outages([rec(10.0, 20.0, jobs=2), rec(30.0), rec(35.0, 40.0, jobs=3)]) == [
        Outage(10.0, 20.0, 2, records=1),
        Outage(30.0, 40.0, 3, records=2),
    ]


def test_the_follower_sends_the_reopened_outage_once_from_its_first_record(data_dir, sent):
    follower = HistoryFollower(data_dir)
    follower.start()
    for shape in ([rec(T1)], [rec(T1), rec(T2)], [rec(T1), rec(T2), rec(T3)], REOPENED, DOUBLE_CLOSED):
        write(data_dir, shape)
        follower.poll()
    # PlexSync's list is capped: the oldest open record drops off; nothing new happened.
    write(data_dir, DOUBLE_CLOSED[1:])
    follower.poll()
    assert sent == [(T1, T4)]


def test_the_follower_sends_only_the_seconds_no_earlier_window_covered(data_dir, sent):
    follower = HistoryFollower(data_dir)
    follower.start()
    write(data_dir, [rec(T1), rec(T2, T2 + 30)])
    follower.poll()
    # The stale open record at T1 is closed later (PlexSync's scheduler), much later than T2 + 30.
    write(data_dir, [rec(T1, T3), rec(T2, T2 + 30)])
    follower.poll()
    assert sent == [(T1, T2 + 30), (T2 + 31, T3)]


def test_uncovered_windows_work_in_the_dlq_s_whole_seconds():
    assert uncovered_windows(10.5, 20.5, []) == [(10.5, 20.5)]
    assert uncovered_windows(10.5, 20.5, [(10.2, 20.4)]) == []  # covered seconds 10..21
    assert uncovered_windows(10.0, 40.0, [(15.0, 20.0)]) == [(10.0, 14.0), (21.0, 40.0)]
    assert uncovered_windows(10.0, 40.0, [(0.0, 100.0)]) == []


def test_last_outage_is_the_merged_outage(data_dir):
    write(data_dir, REOPENED + [rec(9000.0)])  # a newer outage still open does not count
    assert last_closed_outage(data_dir) == (T1, T4)


def test_outages_summary_of_a_reopened_outage_is_sane():
    now = T1 + 2000.0
    summary = summarize_outages(REOPENED, now)
    assert summary.count == 1 and not summary.ongoing
    assert summary.downtime_seconds == pytest.approx(T4 - T1)
    assert summary.downtime_seconds <= summary.span_seconds
    assert summary.availability_percent == pytest.approx(100.0 * (1 - (T4 - T1) / 2000.0))
    assert summary.mttr_seconds == pytest.approx(T4 - T1)


def test_a_stale_open_record_never_makes_the_summary_ongoing():
    now = T4 + 100.0
    summary = summarize_outages(DOUBLE_CLOSED, now)
    assert not summary.ongoing
    assert summary.downtime_seconds == pytest.approx(T4 + 0.01 - T1)


def test_a_full_capped_history_of_reopens_never_exceeds_its_span():
    records = [rec(T1 + 60.0 * index) for index in range(MAX_RECORDS - 1)] + [rec(T1 + 60.0 * MAX_RECORDS, T1 + 1e4)]
    summary = summarize_outages(records, now=T1 + 2e4)
    assert summary.count == 1
    assert summary.downtime_seconds == pytest.approx(1e4)
    assert summary.availability_percent == pytest.approx(50.0)
