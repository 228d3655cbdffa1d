"""Decoding pickles never runs code, and refuses anything that is not plain values."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest
from persistqueue.serializers import pickle as persist_queue_pickle

from plexsync_recovery_plugin.decode import UnsafePickleError, safe_loads
from plexsync_recovery_plugin.sync_queue.operations import QUEUE_FILE_NAME, QUEUE_TABLE, open_queue
from tests.pickle_bombs import plexsync_job, timed


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "value",
    [
        {"scene_id": 1, "update_type": "metadata", "data": {"title": "x", "tags": ["a", "b"], "rating": 4.5}},
        [1, "two", 3.0, None, True, b"bytes"],
        (1, 2),
        {1, 2, 3},
        frozenset({"a"}),
        bytearray(b"xy"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_values_round_trip(value, protocol):
    assert safe_loads(pickle.dumps(value, protocol=protocol)) == value


def test_reduce_to_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({"scene_id": 1, "payload": RunsACommand(marker)})
    with pytest.raises(UnsafePickleError, match="system"):
        safe_loads(blob)
    assert not marker.exists()


def test_class_instances_are_refused():
    with pytest.raises(UnsafePickleError, match="not a plain value"):
        safe_loads(pickle.dumps(ValueError("x")))


@pytest.mark.parametrize("blob", [b"", b"not a pickle", pickle.dumps({"a": 1})[:-3], b"\x80\x05\x95"])
def test_malformed_input_is_refused(blob):
    with pytest.raises(UnsafePickleError):
        safe_loads(blob)


def test_oversized_input_is_refused_before_reading():
    with pytest.raises(UnsafePickleError, match="limit"):
        safe_loads(b"\x80" * 101, max_bytes=100)


def test_size_limit_counts_bytes_of_a_memoryview_not_its_items():
    wide = memoryview(bytes(808)).cast("Q")  # 101 items of 8 bytes
    with pytest.raises(UnsafePickleError, match="808 bytes, more than the 800-byte limit"):
        safe_loads(wide, max_bytes=800)


def test_non_bytes_are_refused():
    with pytest.raises(UnsafePickleError, match="str"):
        safe_loads("a string")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [b"bytearray", b"bytes", b"list"])
def test_tiny_pickle_cannot_allocate_gigabytes(name):
    # builtins.<name>(2_000_000_000): 34 bytes asking for 2 GB
    bomb = b"cbuiltins\n" + name + b"\n(J\x00\x94\x35\x77tR."
    with pytest.raises(UnsafePickleError, match="with a number"):
        safe_loads(bomb)


# --- real jobs decode, in every protocol and as persist-queue writes them -----------------


@pytest.mark.parametrize("heavy", [False, True], ids=["job", "heavy-job"])
@pytest.mark.parametrize("protocol", range(6))
def test_plexsync_jobs_decode_in_every_protocol_within_budget(heavy, protocol):
    job = plexsync_job(heavy=heavy)
    value, seconds = timed(safe_loads, pickle.dumps(job, protocol=protocol))
    assert value == job
    assert seconds < 0.050


def test_a_list_shared_by_two_fields_decodes():
    names = ["Performer A", "Performer B"]
    job = plexsync_job()
    job["data"].update(performers=names, performer_names=names)  # one list object: a memo fetch of a container
    value = safe_loads(pickle.dumps(job, protocol=4))
    assert value == job and value["data"]["performers"] is value["data"]["performer_names"]


def test_jobs_as_persist_queue_writes_them_decode(tmp_path):
    jobs = [plexsync_job(scene_id, heavy=scene_id % 2 == 0) for scene_id in range(1, 5)]
    assert [safe_loads(persist_queue_pickle.dumps(job)) for job in jobs] == jobs
    queue = open_queue(tmp_path)
    for job in jobs:
        queue.put(job)
    queue.close()
    conn = sqlite3.connect(Path(queue.path) / QUEUE_FILE_NAME)
    rows = [blob for (blob,) in conn.execute(f"SELECT data FROM {QUEUE_TABLE} ORDER BY _id")]
    conn.close()
    assert [bytes(blob[:2]) for blob in rows] == [b"\x80\x04"] * len(jobs)  # persist-queue pickles with protocol 4
    assert [safe_loads(blob) for blob in rows] == jobs
