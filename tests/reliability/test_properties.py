"""Property-based checks (hypothesis) of the window query and of recovery's bookkeeping.

1. For random DLQ contents and random windows, ``get_outage_dlq_entries`` (and a
   ``DlqWindow`` with tiny pages) returns exactly what a plain Python filter returns, the
   texts parsed to exact milliseconds with ``Decimal``: the contract is "exact at SQLite's
   millisecond precision".
2. For random mixes of queued, redriven, deleted, unanswerable and corrupt entries, the
   counts of ``RecoveryResult`` add up, match a sequential model of the three gates, and
   every recovered scene is queued once.

Each example gets a fresh directory from ``tmp_path_factory`` (function-scoped fixtures are
not reset between examples). Budget: a few seconds in all.
"""

from __future__ import annotations

import calendar
import pickle
import re
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

from plexsync_recovery_plugin import engine
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue, DlqWindow
from plexsync_recovery_plugin.sync_queue.dlq_recovery import get_outage_dlq_entries, recover_outage_jobs
from plexsync_recovery_plugin.sync_queue.operations import enqueue, open_queue
from tests.conftest import WINDOW_START
from tests.reliability.helpers import HealthyPlex, insert_dlq_rows, ledger_rows, pending_scene_counts

pytestmark = pytest.mark.slow

S = int(WINDOW_START)
TYPES = ["PlexServerDown", "PlexNotFound", "PlexAuthError"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- strategies ------------------------------------------------------------------------------


@st.composite
def failed_at_texts(draw) -> str | None:
    """A ``failed_at`` as PlexSync or a hand edit may store it, around the window's start."""
    if draw(st.integers(0, 12)) == 0:
        return None
    second = S + draw(st.integers(-3, 6))
    text = calendar_text(second, draw(st.sampled_from([" ", "T"])))
    digits = draw(st.integers(0, 3))
    if digits:
        text += "." + "".join(str(draw(st.integers(0, 9))) for _ in range(digits))
    return text


def calendar_text(unix_second: int, separator: str) -> str:
    import time

    return time.strftime(f"%Y-%m-%d{separator}%H:%M:%S", time.gmtime(unix_second))


bounds = st.one_of(
    st.integers(-4, 7).map(lambda offset: float(S + offset)),  # whole seconds
    st.integers(-4000, 7000).map(lambda millis: S + millis / 1000),  # on a millisecond (as a float can be)
    st.floats(S - 4, S + 7, allow_nan=False, allow_infinity=False),  # anywhere
)


def near(moments: list[Decimal]) -> st.SearchStrategy[float]:
    """A bound on, or a hair beside, one of the entries' instants: where rounding bugs live."""
    nudges = [Decimal(0), Decimal("0.0005"), Decimal("-0.0005"), Decimal("0.001"), Decimal("-0.001")]
    return st.builds(
        lambda moment, nudge, ulps: _step(float(moment + nudge), ulps),
        st.sampled_from(moments),
        st.sampled_from(nudges),
        st.integers(-1, 1),
    )


def _step(value: float, ulps: int) -> float:
    import math

    for _ in range(abs(ulps)):
        value = math.nextafter(value, math.inf if ulps > 0 else -math.inf)
    return value


@st.composite
def windows(draw, moments: list[Decimal]) -> tuple[float, float]:
    choices = st.one_of(bounds, near(moments)) if moments else bounds
    start = draw(choices)
    end = start if draw(st.integers(0, 5)) == 0 else draw(choices)  # equal bounds now and then
    return (start, end) if start <= end else (end, start)


# --- the plain Python filter -----------------------------------------------------------------

_TEXT = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?")


def exact_seconds(text: str | None) -> Decimal | None:
    """The instant a ``failed_at`` text names, exactly, or None when it is not a time."""
    match = _TEXT.fullmatch(text or "")
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return whole + Decimal("0." + (match.group(7) or "0"))


def expected_ids(rows: list[dict[str, Any]], ids: list[int], start: float, end: float, types: list[str]) -> list[int]:
    low, high = Decimal(start), Decimal(end)  # a float's exact value
    hits = []
    for row, row_id in zip(rows, ids):
        moment = exact_seconds(row["failed_at"])
        if moment is not None and row["error_type"] in types and low <= moment <= high:
            hits.append((moment, row_id))
    return [row_id for _, row_id in sorted(hits)]


# --- property 1: the window query ------------------------------------------------------------


@SETTINGS
@given(
    rows=st.lists(
        st.fixed_dictionaries({"failed_at": failed_at_texts(), "error_type": st.sampled_from(TYPES)}), max_size=25
    ),
    types=st.lists(st.sampled_from(TYPES), unique=True),
    page_size=st.integers(1, 4),
    data=st.data(),
)
def test_window_query_equals_a_plain_filter(tmp_path_factory, rows, types, page_size, data):
    data_dir = tmp_path_factory.mktemp("window")
    dlq = DeadLetterQueue(data_dir)
    ids = insert_dlq_rows(data_dir / "dlq.db", [dict(row, scene_id=index + 1) for index, row in enumerate(rows)])
    moments = [moment for moment in map(exact_seconds, (row["failed_at"] for row in rows)) if moment is not None]
    start, end = data.draw(windows(moments), label="window")
    expected = expected_ids(rows, ids, start, end, types)
    assert [entry["id"] for entry in get_outage_dlq_entries(dlq, start, end, types)] == expected
    paged = DlqWindow(dlq, start, end, types, page_size=page_size)
    assert [entry["id"] for entry in paged] == expected
    assert len(paged) == len(expected)


def test_the_plain_filter_itself():
    """The reference must be right too: a few hand-checked texts."""
    assert exact_seconds("2026-02-15 19:00:00") == Decimal(1771182000)
    assert exact_seconds("2026-02-15T19:00:00.5") == Decimal("1771182000.5")
    assert exact_seconds("2026-02-15 19:00:00.125") == Decimal("1771182000.125")
    assert exact_seconds("2026-02-15 19:00:00.1234") is None
    assert exact_seconds(None) is None


# --- property 2: recovery's counts -----------------------------------------------------------

KINDS = ["ok", "ok", "ok", "corrupt"]


@st.composite
def dlq_mixes(draw) -> dict[str, Any]:
    entries = draw(
        st.lists(
            st.fixed_dictionaries({"scene_id": st.integers(1, 8), "kind": st.sampled_from(KINDS)}),
            min_size=1,
            max_size=30,
        )
    )
    count = len(entries)
    return {
        "entries": entries,
        "redriven": draw(st.sets(st.integers(0, count - 1))),  # indexes an earlier run redrove
        "queued": draw(st.sets(st.integers(1, 8))),  # scenes PlexSync has queued now
        "deleted": draw(st.sets(st.integers(1, 8))),  # scenes gone from Stash
        "unanswerable": draw(st.sets(st.integers(1, 8), max_size=2)),  # Stash errors for these
        "chunk": draw(st.integers(1, 6)),
    }


class MixedStash:
    def __init__(self, deleted: set[int], unanswerable: set[int]) -> None:
        self.deleted, self.unanswerable = deleted, unanswerable

    def find_scene(self, scene_id: int) -> Any:
        if scene_id in self.unanswerable:
            raise KeyError("findScene")  # what stashapi does on a GraphQL error
        return None if scene_id in self.deleted else {"id": str(scene_id)}


def _drain_and_clear(data_dir: Path) -> None:
    """PlexSync's worker: take every job, ack it, then clear the acked rows."""
    worker = SQLiteAckQueue(str(data_dir / "queue"), auto_resume=False)
    try:
        while True:
            try:
                worker.ack(worker.get(block=False))
            except Empty:
                break
        worker.clear_acked_data(max_delete=10_000, keep_latest=0)
    finally:
        worker.close()


def model(mix: dict[str, Any], ids: list[int]) -> tuple[Counter[str], list[int]]:
    """The three gates, one entry at a time, in window order: what recovery should do."""
    outcomes: Counter[str] = Counter()
    queued, recovered = set(mix["queued"]), []
    for index, entry in enumerate(mix["entries"]):
        scene = entry["scene_id"]
        if entry["kind"] == "corrupt":
            outcomes["failed"] += 1
        elif index in mix["redriven"] or scene in queued:
            outcomes["already_queued"] += 1
        elif scene in mix["unanswerable"]:  # Stash could not say, so not "missing" either
            outcomes["stash_error"] += 1
        elif scene in mix["deleted"]:
            outcomes["scene_missing"] += 1
        else:
            outcomes["recovered"] += 1
            queued.add(scene)
            recovered.append(scene)
    return outcomes, recovered


@SETTINGS
@given(mix=dlq_mixes())
def test_recovery_counts_add_up_and_each_scene_is_queued_once(tmp_path_factory, mix):
    data_dir = tmp_path_factory.mktemp("mix")
    dlq = DeadLetterQueue(data_dir)
    rows = []
    for index, entry in enumerate(mix["entries"]):
        row = {"scene_id": entry["scene_id"], "failed_at": S + index}  # window order = list order
        if entry["kind"] == "corrupt":
            row.update(scene_id=None, job_data=b"\x80\x04garbage")
        rows.append(row)
    ids = insert_dlq_rows(data_dir / "dlq.db", rows)
    redriven_ids = {ids[index] for index in mix["redriven"] if mix["entries"][index]["kind"] == "ok"}
    mix["redriven"] = {index for index in mix["redriven"] if ids[index] in redriven_ids}
    stash = MixedStash(mix["deleted"], mix["unanswerable"])

    queue = open_queue(data_dir)
    try:
        # An earlier run redrove some entries; PlexSync's worker then finished and cleared them.
        earlier = [entry for entry in get_outage_dlq_entries(dlq, S, S + 100, TYPES) if entry["id"] in redriven_ids]
        first = recover_outage_jobs(earlier, queue, MixedStash(set(), set()), HealthyPlex(), data_dir)
        assert first.recovered == len({entry["scene_id"] for entry in earlier})
        queue.close()
        _drain_and_clear(data_dir)
        # Ledger entries of redriven DLQ rows whose scene repeated in `earlier` were skipped as
        # queued, not redriven: only the ids in the ledger count as redriven.
        redriven_ids = {record["dlq_id"] for record in ledger_rows(data_dir)}
        mix["redriven"] = {index for index in range(len(ids)) if ids[index] in redriven_ids}
        queue = open_queue(data_dir)
        for scene in sorted(mix["queued"]):
            enqueue(queue, scene, "metadata", {"by": "PlexSync"})

        with mock.patch.object(engine, "RECOVERY_CHUNK", mix["chunk"]):
            result = recover_outage_jobs(
                get_outage_dlq_entries(dlq, S, S + 100, TYPES), queue, stash, HealthyPlex(), data_dir
            )
    finally:
        queue.close()

    outcomes, recovered = model(mix, ids)
    assert result.total_dlq_entries == len(ids)
    parts = (
        result.recovered,
        result.skipped_already_queued,
        result.skipped_plex_down,
        result.skipped_scene_missing,
        result.skipped_stash_error,
        result.failed,
    )
    assert sum(parts) == result.total_dlq_entries
    assert parts == (
        outcomes["recovered"],
        outcomes["already_queued"],
        0,
        outcomes["scene_missing"],
        outcomes["stash_error"],
        outcomes["failed"],
    )
    assert result.recovered_scene_ids == recovered
    assert result.deferred == (outcomes["stash_error"] > 0)
    pending = pending_scene_counts(data_dir)
    assert set(pending.values()) <= {1}
    assert set(pending) == set(recovered) | mix["queued"]
    ledger = ledger_rows(data_dir)
    assert len({record["dlq_id"] for record in ledger}) == len(ledger)  # each entry recorded once
    # one job per recovered scene; repeats of a scene are recorded as covered by that job
    ours = [record for record in ledger if record["job_id"] is not None]  # the rest: covered by PlexSync's jobs
    assert len({record["job_id"] for record in ours}) == first.recovered + result.recovered
    blobs = {row["id"]: row["job_data"] for row in _raw(data_dir)}
    for record in ledger:  # the ledger names the DLQ entry whose job it queued
        assert pickle.loads(blobs[record["dlq_id"]])["scene_id"] == record["scene_id"]


def _raw(data_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(data_dir / "dlq.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT id, job_data FROM dead_letters")]
    finally:
        conn.close()
