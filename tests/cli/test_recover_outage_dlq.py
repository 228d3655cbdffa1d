"""``plexsync-recovery recover`` as a process on the DLQ a real outage leaves (see ``tests/plexsync_outage.py``).

The same scenarios as ``tests/engine/test_outage_window_outcomes.py``, through the
command line a user runs: real files, the loopback Plex and Stash.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest

from plexsync_recovery_plugin.testing import StashTestServer
from tests.cli.conftest import assert_one_error_line, server_flags
from tests.conftest import WINDOW_START, drain
from tests.plexsync_outage import (
    LATER_END,
    LATER_START,
    POISON_SCENE,
    add_outage_dlq,
    add_same_second_copies,
    add_two_edits,
    big_job_pickle,
    worker_job,
)

WINDOW = ["--start", "2026-02-15T19:00:00Z", "--end", "2026-02-15 19:30:00"]  # WINDOW_START..WINDOW_END


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def stash_server() -> Iterator[StashTestServer]:
    """A Stash that has scenes 1-20, and finds even a scene whose id no SQLite can hold."""
    with StashTestServer(scenes=[*range(1, 21), POISON_SCENE]) as server:
        yield server


@pytest.fixture
def recover(run_cli, data_dir, plex_server, stash_server):
    """``recover(*flags, window=WINDOW)``: the command as a process; returns (exit code, JSON report, stderr)."""

    def run(*flags: str, window: list[str] = WINDOW) -> tuple[int, dict[str, Any], str]:
        proc = run_cli("recover", *window, "--data-dir", data_dir, "--json", *flags,
                       *server_flags(plex_server, stash_server))
        assert "Traceback" not in proc.stderr
        return proc.returncode, json.loads(proc.stdout), proc.stderr

    return run


def test_a_poison_entry_fails_alone_on_every_run(recover, plexsync_dir, data_dir):
    for scene_id in (1, 2, 3):
        plexsync_dir.add_dead_letter(worker_job(scene_id), failed_at=WINDOW_START + scene_id)
    poison = pickle.dumps({**worker_job(1), "scene_id": POISON_SCENE}, protocol=0)
    poison_id = plexsync_dir.add_dead_letter({}, job_data=poison, scene_id=None, failed_at=WINDOW_START + 4)

    for recovered, already_queued in ((3, 0), (0, 3)):
        code, report, stderr = recover()
        assert code == 1  # an entry failed
        assert (report["recovered"], report["skipped_already_queued"], report["failed"]) == (recovered, already_queued, 1)
        assert_one_error_line(stderr, "1 entry failed")
        assert f"DLQ entry {poison_id}" in stderr
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]


def test_a_big_job_requeued_is_found_queued_by_the_next_outage(recover, plexsync_dir, data_dir):
    plexsync_dir.add_dead_letter({}, job_data=big_job_pickle(5), scene_id=5, failed_at=WINDOW_START + 10)
    code, report, _ = recover()
    assert (code, report["recovered"]) == (0, 1)

    plexsync_dir.add_dead_letter(worker_job(5), failed_at=LATER_START + 10)
    code, report, stderr = recover(window=["--start", _iso(LATER_START), "--end", _iso(LATER_END)])
    assert (code, report["recovered"], report["skipped_already_queued"]) == (0, 0, 1)
    assert "not a readable job" not in stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [5]


def test_an_outages_temporary_errors_are_recovered_and_the_rest_is_named(recover, plexsync_dir, data_dir):
    add_outage_dlq(plexsync_dir)
    code, report, stderr = recover()
    assert (code, report["recovered"], report["total_dlq_entries"]) == (0, 7, 7)
    assert report["left_by_error_type"] == {"PlexTemporaryError": 1, "PlexNotFound": 1, "PlexPermanentError": 1}
    assert ("left 1 PlexNotFound, 1 PlexPermanentError, 1 PlexTemporaryError in this window;"
            " --include-optional recovers the PlexTemporaryError and PlexNotFound entries") in stderr
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3, 4, 5, 6, 7]


def test_no_outage_casualties_leaves_them_and_include_optional_takes_them(recover, plexsync_dir, data_dir):
    add_outage_dlq(plexsync_dir)
    code, report, stderr = recover("--no-outage-casualties", "--dry-run")
    assert (code, report["recovered"]) == (0, 0)
    assert report["left_by_error_type"] == {"PlexTemporaryError": 8, "PlexNotFound": 1, "PlexPermanentError": 1}
    assert "--include-optional recovers" in stderr

    code, report, _ = recover("--include-optional")
    assert (code, report["recovered"], report["left_by_error_type"]) == (0, 9, {"PlexPermanentError": 1})


def test_an_acked_copy_of_the_failures_second_does_not_cover_it(recover, plexsync_dir, data_dir):
    add_same_second_copies(plexsync_dir)
    code, report, _ = recover()
    assert (code, report["recovered"], report["skipped_already_queued"]) == (0, 5, 5)
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3, 4, 5]


def test_a_scenes_newest_job_is_requeued(recover, plexsync_dir, data_dir):
    add_two_edits(plexsync_dir)
    code, report, _ = recover()
    assert (code, report["recovered"], report["skipped_already_queued"]) == (0, 2, 2)
    jobs = drain(data_dir)
    assert Counter(job["scene_id"] for job in jobs) == {3: 1, 4: 1}
    assert {job["scene_id"]: job["data"]["title"] for job in jobs} == {3: "newer edit", 4: "last of the second"}
