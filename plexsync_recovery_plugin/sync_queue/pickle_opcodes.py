"""What each pickle opcode means to ``pickle_scan``: the kind of value it pushes or the step that handles it.

Only the opcodes a pickle of plain values can use (protocols 0 to 5) are listed; every
other opcode (BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID, buffers) is refused by the walk.
"""

from __future__ import annotations

import pickletools
from typing import Any

__all__ = [
    "BYTES_MAKERS", "COUNTED_SCALARS", "FIXED_SCALARS", "KIND_NAMES", "OPCODE_NAMES", "STEPS",
    "KEY", "VALUE", "GLOBAL", "BYTES_MAKER", "TUPLE", "FROZENSET", "LIST", "DICT", "SET",
]  # fmt: skip

# Kinds of values. A KEY is a scalar whose hash no pickle can make collide with many others
# (str, bytes, int of at most 64 bits, bool, None); a VALUE is any other scalar (float,
# bytearray) or what a call returned. LIST, DICT and SET are the kinds that can be filled.
KEY, VALUE, GLOBAL, BYTES_MAKER, TUPLE, FROZENSET, LIST, DICT, SET = range(9)
KIND_NAMES = ("key", "float or bytearray", "global", "global", "tuple", "frozenset", "list", "dict", "set")

#: Globals whose call returns bytes, a valid key (protocols below 3 rebuild bytes by calling these).
BYTES_MAKERS = {("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")}

OPCODE_NAMES = {op.code.encode("latin1")[0]: op.name for op in pickletools.opcodes}

#: Scalars of a fixed width: opcode -> (bytes of argument, kind).
FIXED_SCALARS = {
    b"J": (4, KEY), b"K": (1, KEY), b"M": (2, KEY), b"G": (8, VALUE),
    b"N": (0, KEY), b"\x88": (0, KEY), b"\x89": (0, KEY),
}  # fmt: skip

#: Scalars whose length comes first: opcode -> (bytes of the length, signed, kind, is an int).
COUNTED_SCALARS = {
    b"T": (4, True, KEY, False), b"U": (1, False, KEY, False), b"B": (4, False, KEY, False),
    b"C": (1, False, KEY, False), b"\x8e": (8, False, KEY, False), b"\x96": (8, False, VALUE, False),
    b"\x8c": (1, False, KEY, False), b"X": (4, False, KEY, False), b"\x8d": (8, False, KEY, False),
    b"\x8a": (1, False, KEY, True), b"\x8b": (4, True, KEY, True),
}  # fmt: skip

#: Every other opcode allowed: opcode -> (name of the walk's step, its argument).
STEPS: dict[bytes, tuple[str, Any]] = {
    # protocol 0's text values: INT, LONG, FLOAT, STRING, UNICODE
    b"I": ("_line", "I"), b"L": ("_line", "L"), b"F": ("_line", "F"), b"S": ("_line", "S"), b"V": ("_line", "V"),
    # the memo: argument is the width of the index, 0 for a decimal line
    b"h": ("_get", 1), b"j": ("_get", 4), b"g": ("_get", 0), b"q": ("_put", 1), b"r": ("_put", 4), b"p": ("_put", 0),
    b"\x94": ("_memoize", None),
    # the stack
    b"(": ("_mark", None), b"0": ("_pop", False), b"1": ("_pop", True), b"2": ("_dup", None), b".": ("_stop", None),
    # new containers: (kind, values taken: 0 none, None all above the last MARK, n the top n)
    b"]": ("_build", (LIST, 0)), b"}": ("_build", (DICT, 0)), b")": ("_build", (TUPLE, 0)),
    b"\x8f": ("_build", (SET, 0)),
    b"l": ("_build", (LIST, None)), b"d": ("_build", (DICT, None)), b"t": ("_build", (TUPLE, None)),
    b"\x91": ("_build", (FROZENSET, None)), b"\x85": ("_build", (TUPLE, 1)), b"\x86": ("_build", (TUPLE, 2)),
    b"\x87": ("_build", (TUPLE, 3)),
    # filling a container: (kind, values taken as above)
    b"a": ("_fill", (LIST, 1)), b"e": ("_fill", (LIST, None)), b"s": ("_fill", (DICT, 2)),
    b"u": ("_fill", (DICT, None)), b"\x90": ("_fill", (SET, None)),
    # globals and calls, protocol and frames
    b"c": ("_global", None), b"\x93": ("_stack_global", None), b"R": ("_reduce", None),
    b"\x80": ("_proto", None), b"\x95": ("_frame", None),
}  # fmt: skip
