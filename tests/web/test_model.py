"""What the page and the metrics are drawn from, in process: each outage's state from the one outage source, the runs
heard through the signals, and the SVG timeline."""

from __future__ import annotations

import re

from plexsync_recovery_plugin.engine import RecoveryResult
from plexsync_recovery_plugin.outages import SOURCE_WATCH, Outage, OutageSource
from plexsync_recovery_plugin.signals import recovery_completed, recovery_failed
from plexsync_recovery_plugin.web.page import timeline_svg
from plexsync_recovery_plugin.web.status import RunJournal, StatusSource
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.web.conftest import DAY, build_world


def test_each_outage_is_recovered_pending_or_failed_as_the_api_and_the_runs_say(tmp_path):
    world = build_world(tmp_path)
    source = OutageSource(world.data_dir)
    assert set(source.states().values()) == {"pending"}  # nobody has recovered anything yet
    source.take_baseline(catch_up_days=0)  # what the daemon's first start does with the catch-up off
    daemon = WatchDaemon(None, lambda: None, WatchSettings(), data_dir=world.data_dir)  # type: ignore[arg-type,return-value]
    with RunJournal() as journal:
        status = StatusSource(daemon, None, journal).snapshot()
        states = [status.states[outage.key] for outage in status.outages]
        assert states == ["recovered", "recovered", "pending", "recovered"]  # the pending window's outage
        first = world.outages[0]
        recovery_failed.send("test", error=OSError("disk full"), start=first[0], end=first[1], received=None)
        failed = StatusSource(daemon, None, journal).snapshot()
    assert failed.states[failed.outages[0].key] == "failed"
    assert failed.runs[0].error == "disk full" and failed.totals.runs["failed"] == 1


def test_a_snapshot_is_reused_until_a_run_is_heard(tmp_path):
    world = build_world(tmp_path)
    daemon = WatchDaemon(None, lambda: None, WatchSettings(), data_dir=world.data_dir)  # type: ignore[arg-type,return-value]
    with RunJournal() as journal:
        source = StatusSource(daemon, None, journal, max_age=3600.0)
        first = source.snapshot()
        assert source.snapshot() is first  # a page and a scrape arriving together read the files once
        recovery_completed.send("test", result=RecoveryResult(total_dlq_entries=1, recovered=1), start=1.0, end=2.0)
        after = source.snapshot()
    assert after is not first and after.totals.runs["completed"] == 1  # the run shows at once, not max_age later
    assert source.snapshot() is after


def test_the_journal_counts_real_runs_and_leaves_out_dry_runs():
    result = RecoveryResult(total_dlq_entries=5, recovered=3, skipped_already_queued=1, skipped_stash_error=1,
                            deferred=True)
    with RunJournal(keep=2) as journal:
        for _ in range(3):
            recovery_completed.send("test", result=result, start=10.0, end=20.0, received=(10.5, 19.5))
        recovery_completed.send("test", result=RecoveryResult(recovered=9, dry_run=True), start=1.0, end=2.0)
    recovery_completed.send("test", result=result, start=10.0, end=20.0)  # disconnected: not heard
    totals = journal.totals()
    assert totals.runs == {"completed": 0, "deferred": 3, "failed": 0}
    assert (totals.recovered, totals.failed_entries) == (9, 0)
    assert totals.skipped == {"already_queued": 3, "scene_missing": 0, "stash_error": 3, "plex_down": 0}
    assert len(journal.runs()) == 2 and journal.runs()[0].received == (10.5, 19.5)


def test_the_timeline_draws_every_recent_outage_visibly_and_none_older():
    now = 1_800_000_000.0
    outages = [
        Outage(now - 40 * DAY, now - 40 * DAY + 600),  # before the 30 days
        Outage(now - 31 * DAY, now - 29 * DAY),  # reaches into them
        Outage(now - 3 * DAY, now - 3 * DAY + 5),  # five seconds: still seen
        Outage(now - 3600, None, source=SOURCE_WATCH),  # ongoing
    ]
    states = {outages[1].key: "failed", outages[2].key: "recovered", outages[3].key: "ongoing"}
    svg = timeline_svg(outages, states, now)
    bars = re.findall(r'<rect class="outage (\w+)" data-key="([^"]+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', svg)
    assert [(state, key) for state, key, *_ in bars] == [("failed", outages[1].key), ("recovered", outages[2].key),
                                                         ("ongoing", outages[3].key)]
    assert all(float(width) >= 3 for *_, width in bars)
    assert float(bars[0][2]) == 96.0  # clipped at the left edge of the 30 days
    assert bars[2][3] != bars[1][3]  # the daemon's outages have a lane of their own
    assert svg.count("<title>") == 3 and "ongoing" in svg


def test_the_dlq_is_counted_by_error_type_and_age_in_one_read(tmp_path):
    from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue

    world = build_world(tmp_path)
    counts = DeadLetterQueue(world.data_dir).counts_by_type_and_age(world.now)
    # Buckets: < 1 h, < 1 d, < 7 d, < 30 d, older.
    assert counts == {"PlexNotFound": (0, 0, 1, 0, 0), "PlexServerDown": (0, 0, 7, 0, 0),
                      "PlexTemporaryError": (0, 1, 0, 0, 0)}
    assert DeadLetterQueue(world.data_dir).counts_by_type_and_age(world.now + 10 * DAY) == {
        "PlexNotFound": (0, 0, 0, 1, 0), "PlexServerDown": (0, 0, 0, 7, 0), "PlexTemporaryError": (0, 0, 0, 1, 0)}
    assert DeadLetterQueue(world.data_dir).counts_by_type_and_age(world.now - 3 * DAY)["PlexServerDown"] == (
        0, 0, 2, 0, 5)  # failed in the future of that "now": not known to be recent


def test_a_section_that_cannot_be_read_is_one_line_on_the_page_and_the_rest_stands(tmp_path, caplog):
    from plexsync_recovery_plugin.web.page import render_page

    world = build_world(tmp_path)
    (world.data_dir / "dlq.db").write_bytes(b"not a database at all" * 100)
    daemon = WatchDaemon(None, lambda: None, WatchSettings(), data_dir=world.data_dir)  # type: ignore[arg-type,return-value]
    with RunJournal() as journal:
        source = StatusSource(daemon, None, journal, max_age=0.0)
        status = source.snapshot()
        source.snapshot()  # the same problem again: logged once
    assert status.dlq is None and "dlq.db" in status.problems["dlq"]
    assert len(status.outages) == 4 and status.summary is not None
    page = render_page(status, actions_enabled=False)
    assert 'id="dlq"' in page and "Could not read this" in page and "<svg" in page
    assert len([r for r in caplog.records if "could not read the dlq" in r.getMessage()]) == 1
