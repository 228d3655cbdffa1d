"""The one source of outages: both sources merged, each outage known by its identity, handled per outage."""

from __future__ import annotations

import json
import sqlite3

from plexsync_recovery_plugin.cli.commands import last_closed_outage
from plexsync_recovery_plugin.outages import SOURCE_PLEXSYNC, SOURCE_WATCH, DetectedOutages
from plexsync_recovery_plugin.state import STATE_FILE_NAME

HOUR = 3600.0


def rec(start, end=None):
    return {"started_at": start, "ended_at": end, "duration": None if end is None else end - start, "jobs_affected": 0}


def write(data_dir, *records):
    (data_dir / "outage_history.json").write_text(json.dumps(list(records)))


def test_a_plexsync_outage_whose_end_is_before_its_start_covers_both_readings(data_dir):
    # PlexSync's clock stepped back an hour while the outage lasted: it closed "before" it opened.
    write(data_dir, rec(10_000.0 + HOUR, 10_000.0 + 300))
    assert last_closed_outage(data_dir) == (10_000.0 + 300, 10_000.0 + HOUR)
    from plexsync_recovery_plugin.outages import OutageSource

    [outage] = OutageSource(data_dir).outages()
    assert outage.clock_stepped and outage.key == f"plexsync:{10_000.0 + HOUR!r}"


def test_handled_is_kept_per_outage_not_as_a_mark_of_the_newest_end(data_dir):
    from plexsync_recovery_plugin.outages import OutageSource

    source = OutageSource(data_dir)
    ahead = rec(10_000.0 + HOUR, 10_000.0 + HOUR + 100)  # recorded while the clock ran ahead
    write(data_dir, ahead)
    [window] = source.unhandled()
    source.mark_handled(window.start, window.end, window.outage)
    # A real outage later, dated inside the seconds the earlier one covered: still its own.
    write(data_dir, ahead, rec(10_000.0 + HOUR + 20, 10_000.0 + HOUR + 50))
    assert [(w.start, w.end) for w in source.unhandled()] == [(10_000.0 + HOUR + 20, 10_000.0 + HOUR + 50)]


def test_what_older_versions_handled_is_carried_over_once(data_dir):
    write(data_dir, rec(1000.0, 1100.0), rec(5000.0, 5100.0))
    # The state file as an older version left it (written here with plain SQL, before any code of
    # this version opened it): the follower's handled windows, the daemon's rows marked announced.
    conn = sqlite3.connect(data_dir / STATE_FILE_NAME)
    with conn:
        conn.execute("CREATE TABLE detected_outages (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL,"
                     " ended_at REAL, dated_from TEXT NOT NULL, jobs_affected INTEGER NOT NULL DEFAULT 0,"
                     " announced_at REAL)")
        conn.execute("INSERT INTO detected_outages (started_at, ended_at, dated_from, announced_at)"
                     " VALUES (7000.0, 7050.0, 'last_healthy_probe', 2.0)")
        # announced, but the clock stepped back while it lasted: its recovery failed then
        conn.execute("INSERT INTO detected_outages (started_at, ended_at, dated_from, announced_at)"
                     " VALUES (9000.0, 8900.0, 'last_healthy_probe', 2.0)")
        conn.execute("CREATE TABLE handled_outages (started_at REAL PRIMARY KEY, ended_at REAL NOT NULL,"
                     " handled_at REAL NOT NULL)")
        conn.execute("INSERT INTO handled_outages VALUES (1000.0, 1100.0, 1.0)")
    conn.close()
    from plexsync_recovery_plugin.outages import OutageSource

    unhandled = [(w.outage.source, w.start, w.end) for w in OutageSource(data_dir).unhandled()]

    # Announced but never recovered ("start is after its end"): recovered now, over both readings.
    assert unhandled == [(SOURCE_PLEXSYNC, 5000.0, 5100.0), (SOURCE_WATCH, 8900.0, 9000.0)]
    conn = sqlite3.connect(data_dir / STATE_FILE_NAME)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        announced = conn.execute("SELECT count(*) FROM detected_outages WHERE announced_at IS NOT NULL").fetchone()
    finally:
        conn.close()
    assert "handled_outages" not in tables and announced == (0,)
