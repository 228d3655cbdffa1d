"""A quick yes for the pickles every PlexSync job is: small, flat, nothing shared, nothing hashed but scalars.

The full structural check (``pickle_scan``) models the unpickler's stack and costs about
45 us for a typical job. Almost every real row is a protocol 2-5 pickle of dicts, lists,
strings and numbers written by ``pickle.dumps``: it fetches nothing from the memo, builds no
tuple or set, and fits in a few kilobytes. For such a pickle nothing can go wrong in the C
unpickler: without memo fetches nothing is shared, without tuples and sets no container is
ever hashed, ints are at most 64 bits (so no two dozen keys share a hash), and at most 50
containers bound the nesting. ``plainly_safe`` recognises exactly those. Its opcode walk is
one regular expression (C speed, a few microseconds a job) that knows every opcode's
argument width, with strings under 256 bytes spelled out by length; a longer string
costs one Python step. Anything else, or anything it is unsure of, goes to the full check.
The one rule it cannot see from the opcodes (dict keys are str, bytes, int, bool or None)
``plain_keys`` checks on the decoded value.
"""

from __future__ import annotations

import functools
import re

__all__ = ["FAST_MAX_BYTES", "FAST_MAX_CONTAINERS", "needs_key_check", "plain_keys", "plainly_safe"]

#: Bytes a quick yes may have: every opcode is at least one byte, so it stays within the
#: full check's 10,000 opcodes, and with ``FAST_MAX_CONTAINERS`` within all its other limits.
FAST_MAX_BYTES = 10_000
#: Lists, dicts and marks a quick yes may open: keeps nesting far under the full check's 100.
FAST_MAX_CONTAINERS = 50

_STOP = ord(".")
_OPENERS = b"}]("  # EMPTY_DICT, EMPTY_LIST, MARK
_FLOAT = b"G"  # BINFLOAT: the one value a plain pickle holds that may not be a dict key
#: Opcodes with a little-endian length before their payload -> the length's width. The
#: expression spells out payloads under 256 bytes; a longer one is skipped by ``_skip_sized``.
_SIZED = {ord("X"): 4, ord("B"): 4, 0x8D: 8}  # BINUNICODE, BINBYTES, BINUNICODE8


def _payloads(width: int) -> bytes:
    """An alternation over a ``width``-byte length under 256 followed by exactly that many bytes."""
    pad = b"\x00" * (width - 1)
    return b"(?:" + b"|".join(re.escape(bytes([size]) + pad) + b".{%d}" % size for size in range(256)) + b")"


@functools.cache
def _opcode_run() -> re.Pattern[bytes]:
    """The longest run of opcodes a quick yes allows, each with its argument (compiled once, on first use)."""
    opcode = (
        rb"\x8c" + _payloads(1)  # SHORT_BINUNICODE: most of a job, so tried first
        + rb"|[\x94}\](Naesu\x88\x89]"  # MEMOIZE, EMPTY_DICT/LIST, MARK, NONE, APPEND(S), SETITEM(S), TRUE, FALSE
        + rb"|[qK].|M..|J.{4}|G.{8}|\x95.{8}"  # BINPUT (1-byte index), BININT1/2, BININT, BINFLOAT, FRAME
        + rb"|C" + _payloads(1)  # SHORT_BINBYTES
        + rb"|[XB]" + _payloads(4)  # BINUNICODE, BINBYTES under 256 bytes
        + rb"|\x8a" + b"(?:" + b"|".join(re.escape(bytes([size])) + b".{%d}" % size for size in range(9)) + b")"  # LONG1, 64 bits
    )
    return re.compile(b"(?:" + opcode + b")*+", re.DOTALL)


def plainly_safe(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` is a small, flat, unshared protocol 2-5 pickle of plain values.

    False means "not known to be safe" (the full check decides), never "unsafe".
    """
    view = bytes(data)
    end = len(view)
    if end < 3 or end > FAST_MAX_BYTES or view[0] != 0x80 or view[1] < 2:
        return False
    if end - len(view.translate(None, _OPENERS)) > FAST_MAX_CONTAINERS:
        return False  # counts such bytes inside strings too: a rare needless full check
    run = _opcode_run().match
    position = 2
    while True:
        found = run(view, position)
        if found is None:  # never: a run may be empty
            return False
        position = found.end()
        if position >= end:
            return False  # truncated: no STOP
        if view[position] == _STOP:
            return position + 1 == end
        position = _skip_sized(view, position)
        if position < 0:
            return False  # a memo fetch, a tuple, a set, a global, protocol 0/1 text: the full check decides


def _skip_sized(view: bytes, position: int) -> int:
    """The position after a long string or bytes opcode at ``position``; -1 for any other opcode."""
    width = _SIZED.get(view[position])
    if width is None:
        return -1
    after = position + 1 + width + int.from_bytes(view[position + 1 : position + 1 + width], "little")
    return after if after <= len(view) else -1  # a length past the end: truncated (or an 8-byte lie)


def needs_key_check(data: bytes) -> bool:
    """Whether a pickle that ``plainly_safe`` accepted may hold a float, the one key it cannot rule out."""
    return _FLOAT in data


#: What the full check allows as a dict key; the same rule here, so both paths agree.
_KEY_TYPES = frozenset((str, bytes, int, bool, type(None)))


def plain_keys(value: object) -> bool:
    """Whether every dict key in a value decoded on the quick path is of a type the full check allows."""
    pending = [value] if type(value) is dict or type(value) is list else []
    pop, push, allowed = pending.pop, pending.append, _KEY_TYPES
    while pending:
        item = pop()
        if type(item) is dict:
            for key, inner in item.items():
                if type(key) not in allowed:
                    return False
                if type(inner) is dict or type(inner) is list:
                    push(inner)
        else:
            for inner in item:
                if type(inner) is dict or type(inner) is list:
                    push(inner)
    return True
