"""A window that selects some types by message, and what it leaves, over every stored form of ``failed_at``."""

from __future__ import annotations

import random
from collections import Counter

from plexsync_recovery_plugin.dev.plexsync_data import Stored
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from tests.conftest import WINDOW_END, WINDOW_START
from tests.sync_queue.test_window_index import S, text

ALL_TYPES = ["PlexServerDown", "PlexTemporaryError", "PlexNotFound", "PlexAuthError", "KeyError"]
MESSAGES = ["Timeout error: read timed out", "Server error (429): slow down", "boom", None]


def test_the_selected_and_the_left_add_up_to_the_window_in_every_form(plexsync_dir, dlq) -> None:
    rng = random.Random(5)
    entries = []
    for scene_id in range(1, 301):
        moment = S + rng.randrange(-30, 1830)  # some outside the window
        form = rng.choice(["space", "t", "number"])
        stored = text(moment) if form == "space" else text(moment, "T", "Z") if form == "t" else moment
        entries.append({"job": {"scene_id": scene_id, "update_type": "metadata"}, "failed_at": Stored(stored),
                        "error_type": rng.choice(ALL_TYPES), "error_message": rng.choice(MESSAGES)})
    plexsync_dir.add_dead_letters(entries)
    every = list(DlqWindow(dlq, WINDOW_START, WINDOW_END, ALL_TYPES))

    def timed_out(message: object) -> bool:
        return isinstance(message, str) and message.startswith("Timeout")

    window = DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown", "PlexTemporaryError"],
                       by_message={"PlexTemporaryError": timed_out}, order="scene")
    selected = [entry for entry in every if entry["error_type"] == "PlexServerDown"
                or (entry["error_type"] == "PlexTemporaryError" and timed_out(entry["error_message"]))]

    assert sorted(entry["id"] for entry in window) == sorted(entry["id"] for entry in selected)
    assert len(window) == len(selected)
    chosen = {entry["id"] for entry in selected}
    left = Counter(entry["error_type"] for entry in every if entry["id"] not in chosen)
    assert window.left_by_error_type() == left  # counted by the read itself

    def same_window() -> DlqWindow:
        return DlqWindow(dlq, WINDOW_START, WINDOW_END, ["PlexServerDown", "PlexTemporaryError"],
                         by_message={"PlexTemporaryError": timed_out}, order="scene")

    assert same_window().left_by_error_type() == left  # never read: its own grouped count
    half_read = same_window()
    reader = iter(half_read)
    next(reader)
    reader.close()
    assert half_read.left_by_error_type() == left  # a read that did not finish counts nothing
    assert 100 < len(every) < 300  # rows outside the window were not counted
