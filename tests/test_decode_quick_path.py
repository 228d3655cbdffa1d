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


@pytest.mark.parametrize("key", [1.5, float("nan")])
def test_a_float_key_is_refused_on_either_path(key):
    blob = pickle.dumps({"job": {key: 1}})
    assert plainly_safe(blob)  # the opcodes look plain: the decoded value is checked
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
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES",
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
