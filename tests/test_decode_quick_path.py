"""The quick yes: real jobs take it, every hostile pickle goes to the full check, and it never disagrees with it."""

from __future__ import annotations

import pickle
import pickletools
import random
from typing import Iterator

import pytest
from persistqueue.serializers import pickle as queue_pickle

from plexsync_recovery_plugin.decode import (
    FAST_MAX_BYTES,
    PickleLimitError,
    UnsafePickleError,
    check_pickle,
    plainly_safe,
    safe_loads,
)
from plexsync_recovery_plugin.dev.plexsync_data import realistic_jobs
from tests import pickle_bombs


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_jobs_take_the_quick_path_and_decode_as_pickle_does(protocol):
    job = pickle_bombs.plexsync_job()
    blob = pickle.dumps(job, protocol=protocol)
    assert plainly_safe(blob)
    assert safe_loads(blob) == pickle.loads(blob) == job
    assert plainly_safe(queue_pickle.dumps(job))  # rows persist-queue writes
    heavy = pickle.dumps(pickle_bombs.plexsync_job(heavy=True), protocol=protocol)
    assert safe_loads(heavy) == pickle.loads(heavy)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_jobs_with_lists_of_dicts_take_the_quick_path_too(protocol):
    """Stash's performers and tags as ``{"id", "name"}`` dicts: their repeated keys are memo fetches."""
    jobs = realistic_jobs(40)
    blobs = [pickle.dumps(job, protocol=protocol) for job in jobs]
    assert any(b"h" in blob and isinstance(job["data"]["performers"][0], dict) for job, blob in zip(jobs, blobs))
    for job, blob in zip(jobs, blobs):
        assert plainly_safe(blob), job["data"]["performers"]
        assert safe_loads(blob) == job


@pytest.mark.parametrize("key", [1.5, float("nan")])
def test_a_float_key_is_refused_on_either_path(key):
    blob = pickle.dumps({"job": {key: 1}})
    assert not plainly_safe(blob)  # a float where a key stands never takes the quick path
    with pytest.raises(UnsafePickleError, match="float"):
        safe_loads(blob)
    with pytest.raises(PickleLimitError, match="float"):
        check_pickle(blob)

@pytest.mark.parametrize(
    "blob",
    [
        pickle_bombs.dict_keyed_by_deep_tuple(1000, with_marks=False),
        pickle_bombs.dict_keyed_by_deep_tuple(1000, with_marks=True),
        pickle_bombs.memo_bomb(100, 5),
        pickle_bombs.memo_index_bomb(),
        pickle_bombs.deep_list(5000),
        pickle_bombs.tiny_opcodes(FAST_MAX_BYTES + 2),
        pickle_bombs.long4_int(100),
        pickle.dumps({(1, 2): "tuple key"}),
        pickle.dumps({"a": frozenset({1})}),
        pickle.dumps([10**30]),  # LONG1 over 8 bytes
        pickle.dumps({"job": 1}, protocol=0),  # text protocols always get the full check
        pickle.dumps({"job": 1})[:-1],  # truncated
    ],
    ids=["deep-tuple-key", "deep-tuple-key-marks", "memo-bomb", "memo-index", "deep-list", "many-opcodes",
         "long4", "tuple-key", "frozenset", "big-int", "protocol-0", "truncated"],
)
def test_anything_hostile_or_unusual_goes_to_the_full_check(blob):
    assert not plainly_safe(blob)


_SHARED = [1]
_CYCLE: list[object] = []
_CYCLE.append(_CYCLE)


@pytest.mark.parametrize(
    "value",
    [
        {"a": _SHARED, "b": _SHARED},  # a memo fetch where a value stands: it could share a container
        [_SHARED, _SHARED],  # ... or a list's item
        _CYCLE,  # ... or make a cycle
        {"a": "same", "b": "same"},  # a repeated value string is declined too (fetched as a value)
        [{"id": 1}, {"id": 2}],  # a one-item dict (SETITEM, no MARK): its fetched key is not in a block
        {"k": {"n": 1}, 2.5: "x"},  # a float key after a nested container
        {"x" * 300: 1, 2.5: "x"},  # a float key after a long string
        {"k": "v", 2.5: "x"},
    ],
    ids=["shared-value", "shared-item", "cycle", "repeated-value", "one-item-dicts", "float-key-after-dict",
         "float-key-after-long-key", "float-key"],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_memo_fetches_and_floats_out_of_their_place_go_to_the_full_check(value, protocol):
    assert not plainly_safe(pickle.dumps(value, protocol=protocol))


def _nested(rng: random.Random, depth: int = 0) -> object:
    """A random plain value with repeated strings, shared containers, float and long keys."""
    pool = ["id", "name", "x" * 300]
    shared: list[object] = [[1], {"id": 1}]
    roll = rng.random()
    if depth < 4 and roll < 0.2:
        keys = [rng.choice([*pool, rng.random(), rng.randint(0, 99), "L" * rng.randint(250, 300)]) for _ in range(rng.randint(0, 5))]
        return {key: _nested(rng, depth + 1) for key in keys}
    if depth < 4 and roll < 0.35:
        return [_nested(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if roll < 0.4:
        return rng.choice(shared)
    return rng.choice([*pool, rng.random(), rng.randint(-2**40, 2**40), None, True, b"b" * rng.randint(0, 300)])


def test_a_quick_yes_of_any_plain_structure_is_a_yes_of_the_full_check():
    """Random nested values, pickled in every protocol the quick path reads: it never accepts what the scan refuses."""
    rng = random.Random(5)
    accepted = 0
    for _ in range(4000):
        blob = pickle.dumps({"k": _nested(rng), rng.choice(["a", "b"]): _nested(rng)}, protocol=rng.choice([2, 3, 4, 5]))
        if plainly_safe(blob):
            accepted += 1
            check_pickle(blob)
    assert accepted > 500


def _mutations(seeds: list[bytes], rng: random.Random, *, changes: tuple[int, int], count: int = 3000) -> Iterator[bytes]:
    """``count`` copies of random seeds, each with between ``changes[0]`` and ``changes[1]`` bytes set at random."""
    for _ in range(count):
        blob = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(*changes)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        yield bytes(blob)


def test_a_quick_yes_is_never_a_no_of_the_full_check():
    """Random mutations of real jobs: whatever the quick path accepts, the full check accepts too."""
    seeds = [pickle.dumps(pickle_bombs.plexsync_job(heavy=heavy), protocol=p) for p in (2, 4, 5) for heavy in (0, 1)]
    seeds += [pickle.dumps(job, protocol=p) for job in realistic_jobs(4) for p in (2, 4, 5)]  # lists of dicts
    accepted = 0
    for blob in _mutations(seeds, random.Random(7), changes=(1, 4)):
        if plainly_safe(blob):
            accepted += 1
            try:
                quick: object = safe_loads(blob)
            except UnsafePickleError as error:
                quick = type(error)
            try:
                check_pickle(blob)
                full: object = pickle.loads(blob)
            except Exception:  # malformed for the full check (or for pickle itself)
                full = UnsafePickleError
            assert quick == full or (quick is UnsafePickleError and full is UnsafePickleError), blob
    assert accepted > 100  # the mutations exercised the quick path, not just its refusals


#: Opcodes that build plain values from their own arguments: none fetches a global, calls
#: anything, builds an object or names a persistent id (so ``find_class`` is never reached).
_INERT_OPCODES = {
    "PROTO", "FRAME", "STOP", "MEMOIZE", "BINPUT", "EMPTY_DICT", "EMPTY_LIST", "MARK", "NONE", "NEWTRUE", "NEWFALSE",
    "APPEND", "APPENDS", "SETITEM", "SETITEMS", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINGET", "LONG_BINGET",
}


def _executed_opcodes(blob: bytes) -> set[str]:
    """The opcodes the unpickler runs: up to the first string that is not UTF-8, where it stops too."""
    names: set[str] = set()
    try:
        for opcode, _, _ in pickletools.genops(blob):
            names.add(opcode.name)
    except UnicodeDecodeError:
        pass
    return names


def test_a_quick_yes_holds_only_opcodes_that_never_reach_a_callable() -> None:
    """What lets a quick yes be loaded by the plain C unpickler: no opcode in it can name or call code."""
    seeds = [pickle.dumps(pickle_bombs.plexsync_job(heavy=heavy), protocol=p) for p in (2, 3, 4, 5) for heavy in (0, 1)]
    seeds += [pickle.dumps({"b": b"x" * 300, "t": "y" * 300, "n": [None, True, 2**40, 1.5]}, protocol=p) for p in (3, 4, 5)]
    seeds += [pickle.dumps(job, protocol=p) for job in realistic_jobs(4) for p in (2, 4, 5)]
    accepted = 0
    for blob in _mutations(seeds, random.Random(11), changes=(0, 3)):
        if plainly_safe(blob):
            accepted += 1
            names = _executed_opcodes(blob)
            assert names <= _INERT_OPCODES, (names - _INERT_OPCODES, blob)
    assert accepted > 500
    # What protocols 2 and 3 write for sets and bytes calls a global: never a quick yes.
    assert not plainly_safe(pickle.dumps({"s": {1, 2}}, protocol=2))
    assert not plainly_safe(pickle.dumps({"b": b"raw"}, protocol=2))
    assert not plainly_safe(pickle.dumps({"s": {1, 2}}, protocol=4))
