"""A window read by scene: the same entries as by time, by scene and newest first, without holding PlexSync's DLQ locked."""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import pytest

from plexsync_recovery_plugin.dev.plexsync_data import Stored
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from tests.conftest import WINDOW_END, WINDOW_START
from tests.sync_queue.test_window_index import TYPES, S, text


def _mixed_window(plexsync_dir: Any, rows: int, seed: int) -> None:
    """Scenes in random order, several entries for some, every stored form, ties, other types, and rows outside."""
    rng = random.Random(seed)
    entries = []
    for _ in range(rows):
        moment = S + rng.randrange(-30, 1830)  # some just outside the window
        form = rng.choice(["space", "space", "t", "number"])
        stored = text(moment) if form == "space" else text(moment, "T", "Z") if form == "t" else moment
        scene_id = rng.choice([None, *range(1, 40)])  # NULL: the job alone names the scene
        entries.append({
            "job": {"scene_id": scene_id or 7, "update_type": "metadata"},
            "scene_id": scene_id,
            "error_type": rng.choice(["PlexServerDown", "PlexServerDown", "PlexAuthError"]),
            "failed_at": Stored(stored),
        })
    plexsync_dir.add_dead_letters(entries)


@pytest.mark.parametrize(("page_size", "seed"), [(1, 1), (7, 2), (1000, 3)])
def test_scene_order_is_the_time_order_sorted_by_scene(plexsync_dir, dlq, page_size: int, seed: int) -> None:
    _mixed_window(plexsync_dir, 400, seed)
    by_time = list(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=page_size))
    by_scene = list(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=page_size, order="scene"))

    # A stable sort of the reversed time order by scene id is (scene, newest first); NULL columns come first.
    expected = sorted(reversed(by_time), key=lambda entry: -1 if entry["scene_id"] is None else entry["scene_id"])
    assert [entry["id"] for entry in by_scene] == [entry["id"] for entry in expected]
    assert by_scene == expected  # every column, the blob included
    assert 150 < len(by_scene) < 400  # the data had rows outside the window and of other types


def test_the_dlq_is_not_held_while_the_entries_are_read(plexsync_dir, dlq) -> None:
    """PlexSync dead-letters (and deletes) rows while a recovery reads; its DLQ keeps a rollback journal."""
    ids = plexsync_dir.add_dead_letters(
        {"job": {"scene_id": scene_id}, "failed_at": S + scene_id} for scene_id in range(1, 31)
    )
    entries = iter(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=10, order="scene"))
    first = next(entries)

    plexsync = sqlite3.connect(plexsync_dir.dlq_path, timeout=0)  # PlexSync's writer; it must not wait
    try:
        with plexsync:
            plexsync.execute("DELETE FROM dead_letters WHERE id = ?", (ids[25],))
            plexsync.execute("INSERT INTO dead_letters (job_id, scene_id, error_type, failed_at) VALUES (1, 99, 'PlexServerDown', ?)",
                             (text(S + 5),))
    finally:
        plexsync.close()
    rest = list(entries)

    assert [first["id"], *(entry["id"] for entry in rest)] == [row for row in ids if row != ids[25]]  # deleted: skipped


def test_an_unknown_order_is_refused_by_name(dlq) -> None:
    with pytest.raises(ValueError, match="'scenes'"):
        DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, order="scenes")


@pytest.mark.parametrize("order", ["time", "scene"])
def test_a_half_read_window_may_be_closed_on_another_thread(plexsync_dir, dlq, order: str) -> None:
    """The garbage collector finalizes an abandoned window on whatever thread it runs: closing must not fail there."""
    import threading

    plexsync_dir.add_dead_letters({"job": {"scene_id": scene_id}, "failed_at": S + scene_id} for scene_id in range(1, 6))
    entries = iter(DlqWindow(dlq, WINDOW_START, WINDOW_END, TYPES, page_size=2, order=order))
    assert next(entries)["scene_id"] == 1
    errors: list[BaseException] = []

    def finalize() -> None:
        try:
            entries.close()  # what finalization does: closes the reader's connection
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    closer = threading.Thread(target=finalize)
    closer.start()
    closer.join()
    assert errors == []
