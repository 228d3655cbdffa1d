"""Fuzz: whatever the bytes, ``safe_loads`` returns plain values or raises UnsafePickleError, in under 50 ms.

Inputs: random mutations of real job pickles (protocols 0-5), random bytes, and crafted
structures (deep nesting of each container, memo bombs, wide containers, strings near
the size limit, big ints, runs of each tiny opcode up to 4 MiB). Time is this thread's
CPU time (``time.thread_time``), so other load on the machine does not count; no margin
is added to the 50 ms bound, two to three times the slowest input found (12-21 ms).
"""

from __future__ import annotations

import functools
import itertools
import pickle
import pickletools
import random
import struct
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plexsync_recovery_plugin.decode import DEFAULT_LIMITS, MAX_PICKLE_BYTES, UnsafePickleError, safe_loads
from tests import pickle_bombs as bombs

BUDGET = 0.050
SEEDS = bombs.real_job_pickles()
_PLAIN_SCALARS = (str, bytes, bytearray, int, float, bool, type(None))
_CONTAINERS = (dict, list, tuple, set, frozenset)
# One of each opcode with a plausible argument, for mutations to insert.
_OPCODES = [op.code.encode("latin1") + {0: b"", 1: b"\x01", 2: b"\x01\x00", 4: b"\x01\x00\x00\x00"}.get(op.arg.n if op.arg else 0, b"1\n")
            for op in pickletools.opcodes]  # fmt: skip


def _assert_plain(value: object) -> None:
    """Only plain types, no deeper than the limit, and it pickles again (no cycle, no recursion error)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()  # ``depth`` containers hold ``item``
        if type(item) in _PLAIN_SCALARS:
            continue
        assert type(item) in _CONTAINERS, type(item)
        assert depth < DEFAULT_LIMITS.max_depth
        children = [part for pair in item.items() for part in pair] if isinstance(item, dict) else list(item)  # type: ignore[attr-defined]
        pending.extend((child, depth + 1) for child in children)
    pickle.dumps(value)


def _decodes_or_refuses_in_time(blob: bytes) -> None:
    result, seconds = bombs.timed(safe_loads, blob)
    if isinstance(result, Exception):
        assert isinstance(result, UnsafePickleError), repr(result)
        assert str(result)
    else:
        _assert_plain(result)
    assert seconds < BUDGET, f"{seconds * 1000:.1f} ms for {len(blob)} bytes starting {blob[:60]!r}"


def _mutate(blob: bytes, rng: random.Random) -> bytes:
    data = bytearray(blob)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(data) + 1)
        action = rng.randrange(6)
        if action == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif action == 2:
            del data[at : at + rng.randint(1, 16)]
        elif action == 3:  # a chunk repeated: long runs of the same few opcodes
            data[at:at] = data[at : at + rng.randint(1, 12)] * rng.randint(2, 3000)
        elif action == 4:
            data[at:at] = rng.choice(_OPCODES)
        else:
            other = rng.choice(SEEDS)
            start = rng.randrange(len(other))
            data[at:at] = other[start : start + rng.randint(1, 200)]
    return bytes(data[:MAX_PICKLE_BYTES])


def test_seeded_mutations_of_real_jobs():
    rng = random.Random(20260215)
    for _ in range(1500):
        _decodes_or_refuses_in_time(_mutate(rng.choice(SEEDS), rng))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False))
def test_mutations_of_real_jobs(seed, rng):
    _decodes_or_refuses_in_time(_mutate(seed, rng))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00"]), st.binary(max_size=400))
def test_random_bytes(header, body):
    _decodes_or_refuses_in_time(header + body)


def _deep(depth: int) -> dict[str, Callable[[], bytes]]:
    """``depth`` levels of each container, in each way a pickle can nest them."""
    p4 = bombs.PROTO4
    return {
        f"list-append-{depth}": lambda: bombs.deep_list(depth),
        f"list-mark-{depth}": lambda: p4 + b"(" * depth + b"]" + b"l" * depth + b".",
        f"tuple-mark-{depth}": lambda: p4 + b"(" * depth + b")" + b"t" * depth + b".",
        f"tuple1-{depth}": lambda: p4 + b"N" + b"\x85" * depth + b".",
        f"frozenset-{depth}": lambda: p4 + b"(" * depth + b"N" + b"\x91" * depth + b".",
        f"dict-setitem-{depth}": lambda: p4 + b"}\x8c\x01k" * depth + b"N" + b"s" * depth + b".",
    }


def _crafted() -> dict[str, Callable[[], bytes]]:
    """Builders, called one test at a time: together the inputs would hold about 100 MB."""
    crafted: dict[str, Callable[[], bytes]] = {}
    for depth in (99, 100, 101, 5000, 100_000):
        crafted.update(_deep(depth))
    for depth, marks in itertools.product((100, 101, 100_000), (True, False)):
        crafted[f"deep-key-{depth}-{marks}"] = functools.partial(bombs.dict_keyed_by_deep_tuple, depth, with_marks=marks)
    for (fanout, levels), key in itertools.product(((2, 30), (2, 60), (10, 8), (100, 3), (100, 5), (1000, 2)), (True, False)):
        crafted[f"memo-bomb-{fanout}**{levels}-{key}"] = functools.partial(bombs.memo_bomb, fanout, levels, as_key=key)
    for body, count in ((b"N", 9990), (b"N", 20_000), (b"]", 7990), (b"\x8c\x01a", 9990)):
        crafted[f"wide-list-{body!r}-{count}"] = functools.partial(lambda b, n: bombs.PROTO4 + b"](" + b * n + b"e.", body, count)
    crafted["wide-dict"] = lambda: bombs.PROTO4 + b"}(" + b"".join(b"J" + struct.pack("<i", i) + b"N" for i in range(4990)) + b"u."
    crafted["wide-set"] = lambda: bombs.PROTO4 + b"\x8f(" + b"".join(b"J" + struct.pack("<i", i) for i in range(9990)) + b"\x90."
    for protocol in range(6):
        crafted[f"long-str-{protocol}"] = functools.partial(pickle.dumps, "é" * (MAX_PICKLE_BYTES // 2 - 20), protocol)
        crafted[f"long-bytes-{protocol}"] = functools.partial(pickle.dumps, b"\xff" * (MAX_PICKLE_BYTES // 2 - 20), protocol)
    for size in (8, 9, 255, 256, 100_000):
        crafted[f"long4-{size}"] = functools.partial(bombs.long4_int, size)
    for size in (19, 20, 4300, 100_000):
        crafted[f"text-long-{size}"] = functools.partial(bombs.text_long, size)
        crafted[f"text-int-{size}"] = functools.partial(lambda n: b"I" + b"9" * n + b"\n.", size)
    for index in (10_000, 10_001, 2**32 - 1):
        crafted[f"memo-index-{index}"] = functools.partial(bombs.memo_index_bomb, index)
    for op in (b"N0", b"\x94", b"(", b"(1", b"2", b"h\x00", b")0", b"K\x01", b"\x850", b"\x8c\x00"):
        crafted[f"4MiB-of-{op!r}"] = functools.partial(lambda o: bombs.PROTO4 + b"N\x94" + o * (MAX_PICKLE_BYTES // len(o) - 10) + b".", op)
    crafted["4MiB-list-of-ints"] = functools.partial(bombs.tiny_opcodes, MAX_PICKLE_BYTES)
    return crafted


_CRAFTED = _crafted()


@pytest.mark.parametrize("name", list(_CRAFTED))
def test_crafted_structures(name):
    _decodes_or_refuses_in_time(_CRAFTED[name]())
