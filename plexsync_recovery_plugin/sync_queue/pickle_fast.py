"""A quick yes for the pickles every PlexSync job is: small, flat, nothing shared, nothing hashed but scalars.

The full structural check (``pickle_scan``) models the unpickler's stack and costs about
45 us for a typical job, most of a recovery's time at 20,000 entries. Almost every real
row is a protocol 2-5 pickle of dicts, lists, strings and numbers written by ``pickle.dumps``:
it fetches nothing from the memo, builds no tuple or set, and has a few dozen opcodes. For
such a pickle nothing can go wrong in the C unpickler: without memo fetches nothing is
shared, without tuples and sets no container is ever hashed, ints are at most 64 bits, the
memo index is one byte, and at most 50 containers bound the nesting. ``plainly_safe``
recognises exactly those by skipping over the opcodes' arguments; anything else, or anything
it is unsure of, goes to the full check. The one rule it cannot see from the opcodes (dict
keys are str, bytes, int, bool or None) ``plain_keys`` checks on the decoded value.
"""

from __future__ import annotations

__all__ = ["FAST_MAX_CONTAINERS", "FAST_MAX_OPCODES", "plain_keys", "plainly_safe"]

#: Opcodes a quick yes may have: 512 keeps a dict of colliding keys under ~256 entries (ms).
FAST_MAX_OPCODES = 512
#: Lists, dicts and marks a quick yes may open: keeps nesting far under the full check's 100.
FAST_MAX_CONTAINERS = 50

# Opcode -> how its argument is laid out: ("fixed", n) bytes, or ("sized", n) for an n-byte
# little-endian length followed by that many bytes.
_FIXED: dict[int, int] = {
    0x80: 1,  # PROTO
    0x95: 8,  # FRAME
    ord("}"): 0,  # EMPTY_DICT
    ord("]"): 0,  # EMPTY_LIST
    ord("("): 0,  # MARK
    0x94: 0,  # MEMOIZE
    ord("q"): 1,  # BINPUT (a 1-byte memo index; LONG_BINPUT's 4-byte one could size the memo to 4 GB)
    ord("J"): 4,  # BININT
    ord("K"): 1,  # BININT1
    ord("M"): 2,  # BININT2
    ord("G"): 8,  # BINFLOAT
    ord("N"): 0,  # NONE
    0x88: 0,  # NEWTRUE
    0x89: 0,  # NEWFALSE
    ord("a"): 0,  # APPEND
    ord("e"): 0,  # APPENDS
    ord("s"): 0,  # SETITEM
    ord("u"): 0,  # SETITEMS
}
_SIZED: dict[int, int] = {
    0x8C: 1,  # SHORT_BINUNICODE
    ord("X"): 4,  # BINUNICODE
    0x8D: 8,  # BINUNICODE8
    ord("C"): 1,  # SHORT_BINBYTES
    ord("B"): 4,  # BINBYTES
    0x8A: 1,  # LONG1 (accepted only up to 8 bytes: a 64-bit int)
}
_OPENERS = frozenset((ord("}"), ord("]"), ord("(")))
_STOP = ord(".")
_LONG1 = 0x8A
#: Per opcode byte: the fixed argument width (>= 0), minus the length-field width of a sized
#: argument (< 0), or None when the quick path does not take it.
_WIDTH: list[int | None] = [None] * 256
for _opcode, _width in _FIXED.items():
    _WIDTH[_opcode] = _width
for _opcode, _width in _SIZED.items():
    _WIDTH[_opcode] = -_width


def plainly_safe(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` is a small, flat, unshared protocol 2-5 pickle of plain values.

    False means "not known to be safe" (the full check decides), never "unsafe".
    """
    view = bytes(data)
    end = len(view)
    if end < 3 or view[0] != 0x80 or view[1] < 2:
        return False
    widths, openers, from_bytes = _WIDTH, _OPENERS, int.from_bytes
    position, opcodes, opened = 0, 0, 0
    while position < end and opcodes < FAST_MAX_OPCODES:
        opcode = view[position]
        if opcode == _STOP:
            return position + 1 == end
        width = widths[opcode]
        if width is None:
            return False  # a memo fetch, a tuple, a set, a global, protocol 0/1 text: the full check decides
        opcodes += 1
        if width >= 0:
            position += 1 + width
            if opcode in openers:
                opened += 1
                if opened > FAST_MAX_CONTAINERS:
                    return False
            continue
        size = from_bytes(view[position + 1 : position + 1 - width], "little")
        if opcode == _LONG1 and size > 8:
            return False
        position += 1 - width + size
    return False  # no STOP within the opcode budget, or truncated


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
