"""Decoding pickles never runs code, and refuses anything that is not plain values."""

from __future__ import annotations

import os
import pickle

import pytest

from plexsync_recovery_plugin.sync_queue.safe_pickle import UnsafePickleError, safe_loads


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


def test_non_bytes_are_refused():
    with pytest.raises(UnsafePickleError, match="str"):
        safe_loads("a string")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [b"bytearray", b"bytes", b"list"])
def test_tiny_pickle_cannot_allocate_gigabytes(name):
    # builtins.<name>(2_000_000_000): 34 bytes asking for 2 GB
    bomb = b"cbuiltins\n" + name + b"\n(J\x00\x94\x35\x77tR."
    with pytest.raises(UnsafePickleError, match="with a number"):
        safe_loads(bomb)
