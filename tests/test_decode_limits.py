"""Hostile pickles far under the size limit are refused, with the limit they pass, in bounded time.

Budget: every decode or refusal takes under 50 ms of this thread's CPU time
(``time.thread_time``, so other load on the machine does not count). Inputs that would
crash, stall or exhaust memory on a decoder without limits run in a subprocess, so such
a decoder fails the test instead of taking pytest down.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from plexsync_recovery_plugin.decode import (
    MAX_PICKLE_BYTES,
    PickleLimitError,
    PickleLimits,
    UnsafePickleError,
    check_pickle,
    safe_loads,
)
from tests import pickle_bombs as bombs

BUDGET = 0.050  # CPU seconds per decode, the bound the decoder promises
REPO = Path(__file__).resolve().parents[1]

# Runs in a child with 2 GiB of address space: prints "refused: <reason>" or "decoded", then the CPU time.
_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from tests import pickle_bombs
from plexsync_recovery_plugin.decode import UnsafePickleError, safe_loads
name, args, kwargs = json.loads(sys.argv[1])
blob = getattr(pickle_bombs, name)(*args, **kwargs)
start = time.thread_time()
try:
    safe_loads(blob)
    print("decoded")
except UnsafePickleError as error:
    print("refused:", error)
print(time.thread_time() - start)
"""


def _decode_in_child(name: str, *args: object, **kwargs: object) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps([name, args, kwargs])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert child.returncode == 0, f"decoder died with {child.returncode}: {child.stderr[-500:]}"
    outcome, seconds = child.stdout.strip().rsplit("\n", 1)
    return outcome, float(seconds)


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "reason"),
    [
        # 2 MB: hashing or freeing a million-deep tuple overflows the C stack (SIGSEGV)
        ("dict_keyed_by_deep_tuple", [1_000_000], {"with_marks": True}, "opcode count is 10001, over the limit of 10000 (max_opcodes)"),
        ("dict_keyed_by_deep_tuple", [1_000_000], {"with_marks": False}, "nesting depth is 101, over the limit of 100 (max_depth)"),
        # 1 KB: hashing 100**5 shared leaves takes about 100 s; 2**50 leaves forever
        ("memo_bomb", [100, 5], {}, "references to shared containers is 101, over the limit of 100 (max_shared_refs)"),
        ("memo_bomb", [2, 50], {}, "size with shared parts counted in full is"),
        # 9 bytes: the C unpickler would size its memo table for 2**29 entries (4 GB, 15 s)
        ("memo_index_bomb", [0x0FFFFFFF], {}, "memo index is 268435455, over the limit of 10000 (max_opcodes)"),
    ],
    ids=["million-deep-tuple-marks", "million-deep-tuple1", "memo-bomb-100**5", "memo-bomb-2**50", "memo-index"],
)
def test_pickle_that_crashes_stalls_or_exhausts_a_decoder_is_refused_in_time(name, args, kwargs, reason):
    outcome, seconds = _decode_in_child(name, *args, **kwargs)
    assert outcome.startswith("refused:") and reason in outcome
    assert seconds < BUDGET


def test_the_million_deep_key_is_the_two_megabyte_row_of_the_report():
    assert len(bombs.dict_keyed_by_deep_tuple(1_000_000, with_marks=True)) == 2_000_007 < MAX_PICKLE_BYTES


def test_memo_bomb_with_a_hundred_million_leaves_is_refused_in_time():
    blob = bombs.memo_bomb(100, 4)  # 822 bytes; hashing it as a key takes about a second without limits
    error, seconds = bombs.timed(safe_loads, blob)
    assert isinstance(error, UnsafePickleError) and "max_shared_refs" in str(error)
    assert seconds < BUDGET


def test_five_thousand_deep_list_is_refused_by_the_depth_limit():
    blob = bombs.deep_list(5000)  # 10 KB; once decoded, pickling it again raises RecursionError
    error, seconds = bombs.timed(safe_loads, blob)
    assert isinstance(error, UnsafePickleError)
    assert "nesting depth is 101, over the limit of 100 (max_depth)" in str(error)
    assert seconds < BUDGET


def _nested(kind: str, depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else (value,) if kind == "tuple" else [value]
    return value


@pytest.mark.parametrize("kind", ["list", "dict", "tuple"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_depth_limit_is_exact_for_each_container(kind, protocol):
    assert safe_loads(pickle.dumps(_nested(kind, 100), protocol=protocol)) == _nested(kind, 100)
    with pytest.raises(UnsafePickleError, match=r"nesting depth is 101, over the limit of 100 \(max_depth\)"):
        safe_loads(pickle.dumps(_nested(kind, 101), protocol=protocol))


_ONE_MIB_KEY = b"\x8d" + (1 << 20).to_bytes(8, "little") + b"k" * (1 << 20) + bombs.MEMOIZE


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (bombs.tiny_opcodes(MAX_PICKLE_BYTES), "opcode count is 10001, over the limit of 10000 (max_opcodes)"),
        (bombs.PROTO4 + b"]" * 8001 + b"N.", "container count is 8001, over the limit of 8000 (max_containers)"),
        (bombs.PROTO4 + _ONE_MIB_KEY + b"}h\x00Ns0" * 9 + b"N.", "over the limit of 8388608 (max_work)"),
        (bombs.long4_int(1_000_000), "size of an int is 8000000 bits, over the limit of 64 bits (max_int_bits)"),
        (pickle.dumps(2**63, protocol=2), "size of an int is 72 bits, over the limit of 64 bits (max_int_bits)"),
        (bombs.text_long(5000), "is not a decimal of at most 19 digits (max_int_bits)"),
        (pickle.dumps(2**64, protocol=0), "is not a decimal of at most 19 digits (max_int_bits)"),
        (b"F" + b"1" * 40 + b"\n.", "float is written in 40 characters, over the limit of 32"),
    ],
    ids=["4MiB-tiny-opcodes", "containers", "work", "long4", "long1", "text-long", "text-2**64", "text-float"],
)
def test_each_limit_refuses_with_its_name_and_the_value(blob, reason):
    error, seconds = bombs.timed(safe_loads, blob)
    assert isinstance(error, UnsafePickleError) and reason in str(error)
    assert seconds < BUDGET


@pytest.mark.parametrize("protocol", range(6))
def test_ints_of_64_bits_decode(protocol):
    values = [2**63 - 1, -(2**63), 10**18, -1, 0]
    assert safe_loads(pickle.dumps(values, protocol=protocol)) == values


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("value", [{(1, 2): "x"}, {frozenset(): "x"}, {1.5: "x"}, {("a",)}, {2.5}, {frozenset({1})}])
def test_only_scalars_whose_hashes_cannot_collide_are_keys(value, protocol):
    # tuple, frozenset and float hashes can be made to collide: thousands of such keys take quadratic time
    with pytest.raises(UnsafePickleError, match="as a dict key or set member"):
        safe_loads(pickle.dumps(value, protocol=protocol))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3])
@pytest.mark.parametrize("value", [{(1, 2)}, {2.5}, frozenset({("a",)})])
def test_sets_rebuilt_by_a_call_take_scalar_members_only(value, protocol):
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(value, protocol=protocol))


@pytest.mark.parametrize("protocol", range(6))
def test_scalar_keys_and_members_decode(protocol):
    value = {"a": 1, b"b": 2, 3: {None, True, "s", b"b", -7}, None: frozenset({"x", 9}), False: bytearray(b"y")}
    assert safe_loads(pickle.dumps(value, protocol=protocol)) == value


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (bombs.call("builtins", "int", b"X\x10\x00\x00\x00" + b"9" * 16 + b"\x85"), r"calls int\(str\)"),
        (bombs.call("builtins", "list", b"X\x01\x00\x00\x00a\x85"), r"calls list\(str\)"),
        (bombs.call("builtins", "set", b"(]K\x01a]K\x02at"), r"calls set\(list, list\)"),
        (bombs.call("builtins", "bytes", b"](K\x01K\x02e\x85"), r"calls bytes\(list\)"),
        (b"\x80\x02cbuiltins\nlist\n.", "value is a global"),
        (b"\x80\x02]cbuiltins\nlist\na.", "places a global in a value"),
    ],
    ids=["int-of-str", "list-of-str", "set-of-two", "bytes-of-list", "bare-global", "global-in-list"],
)
def test_calls_are_only_those_a_pickler_of_plain_values_writes(blob, reason):
    with pytest.raises(UnsafePickleError, match=reason):
        safe_loads(blob)


def test_a_list_cannot_be_made_to_contain_itself():
    with pytest.raises(UnsafePickleError, match="places a list inside itself"):
        safe_loads(bombs.PROTO4 + b"]\x94h\x00a.")


def test_a_list_cannot_change_after_it_is_placed_in_another():
    # L0 into L1, then L0 fetched again and grown: L1's counted size would be stale
    with pytest.raises(UnsafePickleError, match="changes a list after placing it in another value"):
        safe_loads(bombs.PROTO4 + b"]\x94]h\x00a\x94h\x00Na.")


@pytest.mark.parametrize(
    "blob",
    [
        pickle.dumps("x" * (MAX_PICKLE_BYTES - 20), protocol=4),
        b"V" + b"\\u1234" * ((MAX_PICKLE_BYTES - 4) // 6) + b"\n.",
        b"S'" + b"\\x41" * ((MAX_PICKLE_BYTES - 8) // 4) + b"'\n.",
        pickle.dumps([str(i) * 400 for i in range(1500)], protocol=4),
        pickle.dumps({str(i): [i, str(i)] for i in range(1000)}, protocol=2),
    ],
    ids=["4MiB-str", "4MiB-proto0-escapes", "4MiB-proto0-bytes-escapes", "1500-long-strings", "1000-entry-dict"],
)
def test_large_plain_pickles_decode_within_budget(blob):
    value, seconds = bombs.timed(safe_loads, blob)
    assert not isinstance(value, Exception), value
    assert value == pickle.loads(blob)
    assert seconds < BUDGET


def test_limits_can_be_chosen_per_scan():
    blob = pickle.dumps([[["deep"]]], protocol=4)
    check_pickle(blob, PickleLimits(max_depth=3))
    with pytest.raises(PickleLimitError, match=r"nesting depth is 3, over the limit of 2 \(max_depth\)"):
        check_pickle(blob, PickleLimits(max_depth=2))
