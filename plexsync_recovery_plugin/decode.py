"""Decoding PlexSync's pickled jobs so that it can never run code, nor take unbounded time, memory or stack.

PlexSync stores jobs as pickles, in the DLQ and in the live queue. A pickle can name any
importable callable and have the unpickler call it, so a tampered or corrupt row could run
code; and a pickle of plain values can still be built to crash or stall whoever loads it
(a million-deep tuple, a memo bomb with 10**10 shared leaves, four million empty dicts).
One concept, in the order a pickle meets it:

* **limits**: the bounds a pickle must stay within (``PickleLimits``; DLQ jobs and, twice
  as wide, queue rows);
* **opcodes, stack and scan**: a walk over the opcodes that replays the unpickler's stack
  with a small record per value and refuses, before anything is built, a pickle past a
  limit (``check_pickle``);
* **fast**: a quick yes, by a grammar of its opcodes, for the common plain job (lists of
  dicts and repeated keys included), whose opcodes cannot reach a global or a call nor
  build what the scan would refuse, so the plain C unpickler may load it (``plainly_safe``);
* **loading**: ``safe_loads``, which checks, then loads with an unpickler that admits only
  plain builtin values.
"""

from __future__ import annotations

import builtins
import io
import pickle
import pickletools
import re
from dataclasses import dataclass, replace
from typing import Any, Callable

__all__ = ['DEFAULT_LIMITS', 'FAST_MAX_BYTES', 'MAX_PICKLE_BYTES', 'PickleLimitError', 'PickleLimits', 'QUEUE_LIMITS', 'QUEUE_MAX_PICKLE_BYTES', 'UnsafePickleError', 'check_pickle', 'plainly_safe', 'safe_loads']


# --- limits ------------------------------------------------------------
# The bounds a pickle must stay within to be decoded, whatever its bytes.
#
# A pickle far under the size limit can still take the process down when loaded: a
# million-deep tuple crashes the interpreter when it is hashed or freed, a tuple whose
# levels each refer a hundred times to the level below has 100**5 leaves to hash or
# compare, and a 5,000-deep list breaks re-pickling later. the scan below walks the
# opcodes and refuses, before anything is built, a pickle that passes one of these limits.

class PickleLimitError(ValueError):
    """The pickle is malformed or passes a structural limit; the message says which and by how much."""


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on what one pickle may make the unpickler do.

    A PlexSync job (job_id, scene_id, update_type, enqueued_at, job_key and a data dict
    of about fifteen fields with lists of performers, tags and their ids) is about 150
    opcodes, nests 3 deep, holds 6 containers and shares none. The heaviest job its
    fields allow (40 performers, 150 tags, 3 KB of details) is 9 KB and 850 opcodes
    (1,250 in protocol 0). The defaults stay well above that and well below harm.

    Attributes:
        max_opcodes: Opcodes read (10,000: 8x the heaviest job). The walk costs 0.1 to
            1.5 us per opcode, so walk and decode end within about 20 ms at the limit.
        max_depth: Nesting (100: a job nests 3). Hashing, freeing, comparing and
            re-pickling recurse once per level; a 5,000-deep list breaks them.
        max_containers: Lists, dicts, sets and tuples built (8,000; a job has under 10).
        max_shared_refs: Memo fetches or DUPs of a container (100). The pickler shares a
            container only when one list sits in two fields; memo bombs need hundreds.
        max_expanded: Bytes of any value with every shared part counted in full, payload
            plus ``NODE_BYTES`` per value (16 MiB): what comparing, hashing or printing it
            walks. Unshared, 4 MiB and 10,000 opcodes expand to under 4.7 MiB.
        max_work: Bytes of dict keys and set members hashed, plus bytes passed to calls
            (8 MiB): equal keys are compared in full, and protocols below 4 rebuild sets
            and bytes by calls. Unshared, they total under 4.7 MiB.
        max_int_bits: Size of an int (64: 19 decimal digits, 8 bytes). Within 64 bits
            only a handful of ints share a hash, so no pickle can fill a dict with
            colliding keys (which takes quadratic time).
    """

    max_opcodes: int = 10_000
    max_depth: int = 100
    max_containers: int = 8_000
    max_shared_refs: int = 100
    max_expanded: int = 16 * 1024 * 1024
    max_work: int = 8 * 1024 * 1024
    max_int_bits: int = 64


#: What a DLQ entry's job must stay within to be accepted for recovery.
DEFAULT_LIMITS = PickleLimits()

#: What a queue row must stay within to be read (de-duplication): twice a DLQ job's counts.
#: A job accepted from the DLQ is re-queued as persist-queue pickles it (protocol 4, a
#: MEMOIZE after every string and container), so one opcode of a DLQ pickle written without
#: them (``pickletools.optimize``) becomes two: 6,033 opcodes re-queued are 12,045. The same
#: values re-encoded nest no deeper, build no more containers and share no more, and the
#: job's own fields add a few hundred bytes, so twice every count covers any accepted job;
#: the batch writer still decodes each re-queued row that could come near these limits with
#: this decoder, and fails that entry alone if it cannot (``job_writers``).
QUEUE_LIMITS = replace(
    DEFAULT_LIMITS,
    max_opcodes=2 * DEFAULT_LIMITS.max_opcodes + 1_000,
    max_depth=DEFAULT_LIMITS.max_depth + 1,
    max_containers=2 * DEFAULT_LIMITS.max_containers,
    max_shared_refs=2 * DEFAULT_LIMITS.max_shared_refs,
    max_expanded=2 * DEFAULT_LIMITS.max_expanded,
    max_work=2 * DEFAULT_LIMITS.max_work,
)

#: What one value costs in an expanded size besides its payload (about a small object's memory).
NODE_BYTES = 64


# --- opcodes ------------------------------------------------------------
# What each pickle opcode means to the scan: the kind of value it pushes or the step that handles it.
#
# Only the opcodes a pickle of plain values can use (protocols 0 to 5) are listed; every
# other opcode (BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID, buffers) is refused by the walk.

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


# --- stack ------------------------------------------------------------
# The C unpickler's stack, marks and memo, replayed by the scan with a record per value.
#
# Only what keeps the replay faithful lives here: where a MARK fences off the values below
# it, what POP does when a MARK sits on top, how memo indexes are read. A pickle that
# CPython's unpickler would reject for these reasons is refused as "not a valid pickle".

#: What the walk keeps per value: [expanded size, depth (0 for a scalar), kind, open].
Record = list[Any]


def malformed(reason: str) -> PickleLimitError:
    """The refusal of a pickle the unpickler could not load either."""
    return PickleLimitError(f"not a valid pickle ({reason})")


class UnpicklerStack:
    """The stack, marks and memo of one walk, and the steps that only move records around."""

    def __init__(self, data: bytes, limits: PickleLimits) -> None:
        self.data, self.limits = data, limits
        self.stack: list[Record] = []
        self.marks: list[int] = []
        self.memo: dict[int, Record] = {}
        self.shared = 0

    def over(self, what: str, value: int, limit: str, unit: str = "") -> PickleLimitError:
        """The refusal for a limit passed: which limit, and the value that passed it."""
        unit = f" {unit}" if unit else ""
        bound = getattr(self.limits, limit)
        return PickleLimitError(f"pickle's {what} is {value}{unit}, over the limit of {bound}{unit} ({limit})")

    # --- the memo ----------------------------------------------------------------------------

    def _index(self, pos: int, width: int) -> tuple[int, int]:
        """A memo index: a decimal line (width 0) or a little-endian number of ``width`` bytes."""
        if width:
            return int.from_bytes(self.data[pos : pos + width], "little"), pos + width
        end = self.data.find(b"\n", pos)
        text = self.data[pos:end]
        if end < 0 or not text.isdigit() or len(text) > 10:
            raise malformed(f"bad memo index {text[:20]!r}")
        return int(text), end + 1

    def _get(self, pos: int, width: int) -> int:
        index, pos = self._index(pos, width)
        record = self.memo.get(index)
        if record is None:
            raise malformed(f"memo entry {index} fetched but never stored")
        self._push_again(record)
        return pos

    def _put(self, pos: int, width: int) -> int:
        index, pos = self._index(pos, width)
        # Real pickles number entries from 0; the C unpickler allocates its memo table up to the index.
        if index > self.limits.max_opcodes:
            raise self.over("memo index", index, "max_opcodes")
        self.memo[index] = self._top()
        return pos

    def _memoize(self, pos: int, arg: None) -> int:
        self.memo[len(self.memo)] = self._top()
        return pos

    def _push_again(self, record: Record) -> None:
        """GET or DUP: the same value once more. A shared container is what multiplies sizes."""
        if record[1]:
            self.shared += 1
            if self.shared > self.limits.max_shared_refs:
                raise self.over("count of references to shared containers", self.shared, "max_shared_refs")
        self.stack.append(record)

    # --- the stack and its marks, as the C unpickler keeps them --------------------------

    def _top(self) -> Record:
        """The top value; values below the last MARK (the fence) are out of reach until it is closed."""
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise malformed("it uses a value its stack does not hold")
        return self.stack[-1]

    def _take(self, count: int | None) -> list[Record]:
        """Pop the ``count`` top values, or (``None``) the last MARK and every value above it."""
        if count is None:
            if not self.marks:
                raise malformed("it closes a MARK it never opened")
            count = len(self.stack) - self.marks.pop()
        start = len(self.stack) - count
        if start < (self.marks[-1] if self.marks else 0):
            raise malformed("it uses a value its stack does not hold")
        taken = self.stack[start:]
        del self.stack[start:]
        return taken

    def _mark(self, pos: int, arg: None) -> int:
        self.marks.append(len(self.stack))
        return pos

    def _pop(self, pos: int, to_mark: bool) -> int:
        """POP and POP_MARK. Like the C unpickler, POP drops a MARK sitting on top of the stack."""
        if not to_mark and self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        else:
            self._take(None if to_mark else 1)
        return pos

    def _dup(self, pos: int, arg: None) -> int:
        self._push_again(self._top())
        return pos


# --- scan ------------------------------------------------------------
# A walk over a pickle's opcodes that enforces ``PickleLimits`` before anything is built.
#
# The walk replays the C unpickler's stack, marks and memo (the stack above) with a
# small record per value instead of the value: ``[expanded size, depth, kind, open]``. A container stays open (may still be filled) until it is placed in another
# value; from then on its record is final, so sizes and depths are summed once, and no
# value can be made to contain itself. The walk refuses at the first opcode over a limit,
# so it never reads more than ``max_opcodes`` opcodes (0.1 to 1.5 us each).

_MAX_FLOAT_TEXT = 32  # the repr of any float is at most 24 characters


def check_pickle(data: bytes, limits: PickleLimits = DEFAULT_LIMITS) -> None:
    """Walk ``data``'s opcodes up to STOP and refuse the pickle at the first limit it passes.

    Args:
        data: The pickled bytes.
        limits: The bounds to enforce.

    Raises:
        PickleLimitError: The pickle passes a limit (the message names it and the value),
            is malformed ("not a valid pickle (...)"), or uses an opcode plain values never need.
    """
    try:
        _Walk(data, limits).run()
    except IndexError:  # a fixed-width argument cut off by the end of the data
        raise malformed("truncated: an argument runs past its end") from None


class _Walk(UnpicklerStack):
    """One walk over one pickle: what each value costs, on top of the unpickler's stack."""

    def __init__(self, data: bytes, limits: PickleLimits) -> None:
        super().__init__(data, limits)
        self.containers = self.work = 0
        self.max_digits = int(limits.max_int_bits * 0.30103)  # decimal digits that always fit in the bits
        self.text_int = re.compile(rb"-?[0-9]{1,%d}L?" % self.max_digits)

    def run(self) -> None:
        """Walk to STOP. Fixed-width scalars, MEMOIZE, BINGET and MARK, most opcodes of any pickle, are inline."""
        data, end, stack, memo, marks, steps = self.data, len(self.data), self.stack, self.memo, self.marks, _STEPS
        pos = 0
        for _ in range(self.limits.max_opcodes):
            if pos >= end:
                raise malformed("truncated: it ends before its STOP opcode")
            op = data[pos]
            pos += 1
            step, arg = steps[op]
            if step is None:  # a scalar of fixed width
                stack.append(arg[1])
                pos += arg[0]
            elif op == 0x94:  # MEMOIZE
                memo[len(memo)] = self._top()
            elif op == 0x68 and memo.get(data[pos], _NO_RECORD)[1] == 0:  # BINGET of a scalar
                stack.append(memo[data[pos]])
                pos += 1
            elif op == 0x28:  # MARK
                marks.append(len(stack))
            elif op == 0x2E:  # STOP
                self._stop(pos, None)
                return
            else:
                pos = step(self, pos, arg)
        raise self.over("opcode count", self.limits.max_opcodes + 1, "max_opcodes")

    # --- scalars and the memo ------------------------------------------------------------

    def _counted(self, pos: int, arg: tuple[int, bool, int, bool]) -> int:
        """A str, bytes or int whose length comes first, in ``width`` bytes."""
        width, signed, kind, is_int = arg
        data = self.data
        size = data[pos] if width == 1 else int.from_bytes(data[pos : pos + width], "little", signed=signed)
        pos += width + size
        if size < 0 or pos > len(data):
            raise malformed("truncated: a length runs past its end")
        if is_int and size * 8 > self.limits.max_int_bits:
            raise self.over("size of an int", size * 8, "max_int_bits", "bits")
        self.stack.append([NODE_BYTES + size, 0, kind, False])
        return pos

    def _line(self, pos: int, opcode: str) -> int:
        """Protocol 0's text values: INT, LONG, FLOAT, STRING, UNICODE."""
        end = self.data.find(b"\n", pos)
        if end < 0:
            raise malformed("truncated: a text line has no end")
        if opcode in "IL" and not self.text_int.fullmatch(self.data, pos, end):
            text, digits = self.data[pos:end][:30], self.max_digits
            raise PickleLimitError(f"pickle's int {text!r} is not a decimal of at most {digits} digits (max_int_bits)")
        if opcode == "F" and end - pos > _MAX_FLOAT_TEXT:
            length, most = end - pos, _MAX_FLOAT_TEXT
            raise PickleLimitError(f"pickle's float is written in {length} characters, over the limit of {most}")
        self.stack.append([NODE_BYTES + end - pos, 0, VALUE if opcode == "F" else KEY, False])
        return end + 1

    def _stop(self, pos: int, arg: None) -> int:
        """STOP: the value is the top of the stack (``run`` ends the walk)."""
        if self._top()[2] in (GLOBAL, BYTES_MAKER):
            raise PickleLimitError("pickle's value is a global, which is not a plain value")
        return pos

    # --- containers ------------------------------------------------------------------------

    def _build(self, pos: int, arg: tuple[int, int | None]) -> int:
        """A new container (EMPTY_*, LIST, DICT, TUPLE*, FROZENSET) of the values taken from the stack."""
        kind, count = arg
        items = self._take(count) if count != 0 else []
        if kind == DICT and len(items) % 2:
            raise malformed("a dict with an odd number of keys and values")
        if kind in (DICT, FROZENSET) and items:
            self._check_keys(items[0::2] if kind == DICT else items)
        self.containers += 1
        if self.containers > self.limits.max_containers:
            raise self.over("container count", self.containers, "max_containers")
        record = [NODE_BYTES, 1, kind, kind in (LIST, DICT, SET)]
        self._adopt(record, items)
        self.stack.append(record)
        return pos

    def _fill(self, pos: int, arg: tuple[int, int | None]) -> int:
        """APPEND(S), SETITEM(S), ADDITEMS: values into the list, dict or set just below them."""
        kind, count = arg
        items = self._take(count)
        if not items:
            return pos  # the C unpickler does nothing, not even look at the container
        container = self._top()
        if container[2] != kind:
            raise PickleLimitError(f"pickle adds items to a {KIND_NAMES[container[2]]}, not to a {KIND_NAMES[kind]}")
        if not container[3]:
            raise PickleLimitError(f"pickle changes a {KIND_NAMES[kind]} after placing it in another value")
        if kind == DICT:
            if len(items) % 2:
                raise malformed("SETITEMS with an odd number of keys and values")
            self._check_keys(items[0::2])
        elif kind == SET:
            self._check_keys(items)
        self._adopt(container, items)
        return pos

    def _adopt(self, container: Record, items: list[Record]) -> None:
        """Place ``items`` in ``container``: grow its size and depth, and make each child final."""
        size, depth = container[0], container[1]
        for item in items:
            if item[2] in (GLOBAL, BYTES_MAKER):
                raise PickleLimitError("pickle places a global in a value, which is not a plain value")
            if item is container:
                raise PickleLimitError(f"pickle places a {KIND_NAMES[item[2]]} inside itself")
            size += item[0]
            if item[1] >= depth:
                depth = item[1] + 1
            item[3] = False
        if depth > self.limits.max_depth:
            raise self.over("nesting depth", depth, "max_depth")
        if size > self.limits.max_expanded:
            raise self.over("size with shared parts counted in full", size, "max_expanded", "bytes")
        container[0], container[1] = size, depth

    def _check_keys(self, keys: list[Record]) -> None:
        """Dict keys and set members may only be scalars whose hashes cannot be made to collide."""
        work = 0
        for key in keys:
            if key[2] != KEY:
                kind = KIND_NAMES[key[2]]
                only = "only str, bytes, int, bool and None may be"
                raise PickleLimitError(f"pickle uses a {kind} as a dict key or set member; {only}")
            work += key[0]
        self._charge(work)

    def _charge(self, work: int) -> None:
        self.work += work
        if self.work > self.limits.max_work:
            raise self.over("bytes hashed as keys or passed to calls", self.work, "max_work")

    # --- globals, calls, protocol and frames ----------------------------------------------

    def _global(self, pos: int, arg: None) -> int:
        """GLOBAL: module and name on two lines. Which globals are allowed is the unpickler's business."""
        first = self.data.find(b"\n", pos)
        end = self.data.find(b"\n", first + 1) if first >= 0 else -1
        if end < 0:
            raise malformed("truncated: a GLOBAL has no end")
        names = tuple(self.data[pos:end].decode("utf-8", "replace").split("\n"))
        self.stack.append([NODE_BYTES, 0, BYTES_MAKER if names in BYTES_MAKERS else GLOBAL, False])
        return end + 1

    def _stack_global(self, pos: int, arg: None) -> int:
        self._take(2)
        self.stack.append([NODE_BYTES, 0, GLOBAL, False])
        return pos

    def _reduce(self, pos: int, arg: None) -> int:
        """REDUCE: protocols below 4 call set, frozenset, bytes, bytearray or _codecs.encode."""
        callable_, arguments = self._take(2)
        if callable_[2] not in (GLOBAL, BYTES_MAKER) or arguments[2] != TUPLE:
            raise malformed("REDUCE needs a global and a tuple")
        if arguments[1] > 2:
            depth = arguments[1]
            raise PickleLimitError(f"pickle calls a global with arguments nested {depth} deep; plain values need 2")
        self._charge(arguments[0])
        makes_bytes = callable_[2] == BYTES_MAKER and arguments[1] == 1
        self.stack.append([arguments[0], arguments[1] - 1, KEY if makes_bytes else VALUE, False])
        return pos

    def _proto(self, pos: int, arg: None) -> int:
        if self.data[pos] > 5:
            raise malformed(f"unknown protocol {self.data[pos]}")
        return pos + 1

    def _frame(self, pos: int, arg: None) -> int:
        """FRAME: a length, then ordinary opcodes."""
        if pos + 8 + int.from_bytes(self.data[pos : pos + 8], "little") > len(self.data):
            raise malformed("truncated: a frame runs past its end")
        return pos + 8


_Step = Callable[[_Walk, int, Any], int]
_NO_RECORD = [0, 1, VALUE, False]  # depth 1: a BINGET of a missing entry takes the slow path and is refused


def _refuse(walk: _Walk, pos: int, op: int) -> int:
    if op not in OPCODE_NAMES:
        raise malformed(f"unknown opcode {bytes([op])!r} at byte {pos - 1}")
    raise PickleLimitError(f"pickle uses the {OPCODE_NAMES[op]} opcode, which builds no plain value")


def _steps() -> list[tuple[_Step | None, Any]]:
    """For each opcode byte, its step and argument; scalars of fixed width have no step (``run`` pushes them)."""
    steps: list[tuple[_Step | None, Any]] = [(_refuse, op) for op in range(256)]
    for code, (width, kind) in FIXED_SCALARS.items():
        steps[code[0]] = (None, (width, [NODE_BYTES, 0, kind, False]))
    for code, counted in COUNTED_SCALARS.items():
        steps[code[0]] = (_Walk._counted, counted)
    for code, (name, arg) in STEPS.items():
        steps[code[0]] = (getattr(_Walk, name), arg)
    return steps


_STEPS = _steps()


# --- fast ------------------------------------------------------------
# A quick yes for the pickles every PlexSync job is, read by one regular expression at C speed.
#
# The full structural check (the scan above) models the unpickler's stack and costs 45 to
# 150 us a job. Almost every real row is a protocol 2-5 pickle of dicts, lists, strings and
# numbers written by ``pickle.dumps``, a few kilobytes long. ``plainly_safe`` recognises, by
# a grammar of its opcodes, the pickles for which the plain C unpickler can do no harm and
# builds a value the full check would accept; anything else, or anything it is unsure of,
# goes to the full check. What the grammar allows, and why that is enough:
#
# * Only inert opcodes: strings and bytes, ints of at most 64 bits, None, True, False,
#   floats, empty dicts and lists, MARK, APPEND(S), SETITEM(S), MEMOIZE, BINPUT (a 1-byte
#   index) and memo fetches (BINGET, LONG_BINGET). None of them reaches ``find_class``, calls
#   anything, or makes the memo table grow past the number of opcodes; no tuple, set or
#   frozenset is built, so no container is ever hashed.
# * Memo fetches only as the keys of a dict's SETITEMS block, right after its MARK: a
#   repeated key (``"id"``, ``"name"`` in a list of dicts) is what Python pickles that way.
#   Everything pushed there becomes a key of that dict or makes the load fail (SETITEM and
#   APPEND cannot reach past the MARK, APPENDS cannot fill a dict), and a container as a key
#   is unhashable: so a fetch never shares a container nor makes a cycle. Floats are never
#   memoized, so a fetch never brings a float either.
# * Floats only where a value stands: after an even number of values since the last MARK,
#   container or fill (SETITEMS takes key, value, key, value ...), so never as a dict key.
#   After a string longer than 255 bytes (read by Python, below) the count is lost, and no
#   float is accepted until the next such anchor.
# * At most ``FAST_MAX_BYTES`` bytes and ``FAST_MAX_CONTAINERS`` ``}``/``]`` bytes: within
#   every other limit of the full check (see those constants).
#
# Strings under 256 bytes are spelled out by length in the expression; a longer one costs
# one Python step. Measured on realistic jobs (performers and tags as lists of strings or
# of ``{"id", "name"}`` dicts, up to 2 KB of details; ``bench --decode``), a quick yes costs
# 2.5-3x what ``pickle.loads`` does; the full check costs 20-25x.

#: Bytes a quick yes may have. Every opcode is at least one byte, so this stays within the
#: full check's 10,000 opcodes and 8,000 containers. Fetched keys are counted in full each
#: time by the full check (``max_work``, ``max_expanded``): a key of ``s`` bytes fetched
#: ``n`` times costs ``s + 3n`` bytes here and ``n * (s + 64)`` there, at most
#: ``(FAST_MAX_BYTES + 64)**2 / 12`` = 6.8 MB, under both 8 MiB and 16 MiB.
FAST_MAX_BYTES = 9_000
#: ``}`` and ``]`` bytes a quick yes may hold (inside strings too, a rare needless full check):
#: at most that many containers, so nesting stays within the full check's 100.
FAST_MAX_CONTAINERS = 100

_STOP = ord(".")
_MEMOIZE, _BINPUT = 0x94, ord("q")
#: Opcodes after which the grammar knows a key comes next: MARK, a new dict or list, a fill.
_ANCHORS = frozenset(b"(}]uesa")
#: Opcodes with a little-endian length before their payload -> the length's width: read in
#: Python (Python's pickler writes strings under 256 bytes as SHORT_BINUNICODE, in the expression).
_SIZED = {ord("X"): 4, ord("B"): 4, ord("C"): 1, 0x8D: 8}  # BINUNICODE, BINBYTES, SHORT_BINBYTES, BINUNICODE8


def _payloads(width: int) -> bytes:
    """An alternation over a ``width``-byte length under 256 followed by exactly that many bytes."""
    pad = b"\x00" * (width - 1)
    return b"(?:" + b"|".join(re.escape(bytes([size]) + pad) + b".{%d}" % size for size in range(256)) + b")"


#: The compiled expressions by protocol (4 and 5, or 2 and 3), once used: a dict is the quickest look-up.
_GRAMMARS: dict[bool, tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}


def _grammar(protocol4: bool) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """The expressions of a quick yes: with parity known, and after a long string (compiled once each, on first use).

    Protocols 4 and 5 memoize with MEMOIZE, 2 and 3 with BINPUT: one expression each, since
    an optional two-byte opcode costs the expression a third of its speed. Each copy of the
    256-way string alternation costs about 8 ms to compile: the grammar holds five.
    """
    memo = rb"\x94?" if protocol4 else rb"(?:q.)?"
    # Strings under 256 bytes as each protocol writes them: SHORT_BINUNICODE, or BINUNICODE before protocol 4.
    text = rb"\x8c" + _payloads(1) if protocol4 else rb"X" + _payloads(4)
    long1 = rb"\x8a(?:" + b"|".join(re.escape(bytes([size])) + b".{%d}" % size for size in range(9)) + b")"
    # A string; an int of at most 64 bits; None, True, False. Longer strings and bytes are read in Python.
    scalar = b"(?:" + text + rb"|K.|M..|J.{4}|" + long1 + rb"|[N\x88\x89])" + memo
    value = scalar + rb"|G.{8}"  # a float: never memoized
    key = scalar + rb"|h.|j.{4}"  # BINGET, LONG_BINGET: keys of a SETITEMS block only
    anchor = rb"[(}\]uesa]" + memo
    # SETITEMS pairs right after a dict's MARK; the last key may await a container or a long string.
    setitems_block = rb"\}" + memo + rb"\((?:(?:" + key + rb")(?:" + value + rb"|(?=[(}\]uesa.XBC\x8d])))*+"
    body = b"(?:" + setitems_block + b"|" + scalar + b"(?:" + value + b")?+|" + anchor + b")*+"
    after_long_string = b"(?:" + scalar + b")*+"
    return re.compile(body, re.DOTALL), re.compile(after_long_string, re.DOTALL)


def plainly_safe(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` is a pickle the plain C unpickler may load: see the grammar above.

    False means "not known to be safe" (the full check decides), never "unsafe".
    """
    view = data if type(data) is bytes else bytes(data)
    end = len(view)
    if end < 3 or end > FAST_MAX_BYTES or view[0] != 0x80 or not 2 <= view[1] <= 5:
        return False
    if end - len(view.translate(None, b"}]")) > FAST_MAX_CONTAINERS:  # one pass; two ``count``s cost more
        return False
    protocol4 = view[1] >= 4
    grammar = _GRAMMARS.get(protocol4)
    if grammar is None:
        grammar = _GRAMMARS[protocol4] = _grammar(protocol4)
    body, after_long_string = grammar
    position = 11 if view[2] == 0x95 else 2  # a FRAME only right after PROTO
    parity_known = True
    while True:
        found = (body if parity_known else after_long_string).match(view, position)
        position = found.end() if found is not None else position  # both match the empty string: never None
        if position >= end:
            return False  # truncated: no STOP
        opcode = view[position]
        if opcode == _STOP:
            return position + 1 == end
        if not parity_known and opcode in _ANCHORS:
            parity_known = True
            continue
        width = _SIZED.get(opcode)
        if width is None:
            return False  # a global, a call, a tuple, a fetch or a float out of place ...: the full check decides
        position += 1 + width + int.from_bytes(view[position + 1 : position + 1 + width], "little")
        if position < end and view[position] == (_MEMOIZE if protocol4 else _BINPUT):
            position += 1 if protocol4 else 2
        if position > end:
            return False  # a length past the end: truncated (or an 8-byte lie)
        parity_known = False


# --- loading ------------------------------------------------------------
# Only plain builtin values may come back; anything else is refused before it runs.

#: Jobs are a few kilobytes; anything far larger is corrupt or hostile, not a job.
MAX_PICKLE_BYTES = 4 * 1024 * 1024
#: A queue row may be larger than the DLQ job it re-queues (a MEMOIZE byte per value, 5-byte memo indexes).
QUEUE_MAX_PICKLE_BYTES = 2 * MAX_PICKLE_BYTES

# Names a pickle of plain values may reference: protocols before 4 rebuild sets, bytes and
# bytearrays by calling these (under Python 2's module name too), never anything else.
_PLAIN_TYPES = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "bool")
_MEMBER_TYPES = (str, bytes, int, bool, type(None))  # as the scan allows for dict keys and set members


class UnsafePickleError(ValueError):
    """A pickle was refused: it names code, is malformed, too large, or passes a structural limit."""


def _plain_call(kind: type) -> Callable[..., Any]:
    """``kind`` as a pickle may call it: only with the arguments a pickler of plain values writes.

    Sets and frozensets take one list of scalar members, bytes and bytearrays their bytes
    or latin-1 text; nothing takes a number (``bytes(2**31)`` would allocate 2 GiB), and
    the other types take nothing (``int`` of a 4,300-digit string takes quadratic time).
    """

    def build(*args: Any) -> Any:
        if any(isinstance(arg, (int, float)) for arg in args):
            raise UnsafePickleError(f"pickle calls {kind.__name__} with a number, which could allocate without limit")
        if not args or (kind in (set, frozenset) and _are_members(args)):
            return kind(*args)
        if kind in (bytes, bytearray) and _are_bytes(args):
            return kind(*args)
        shape = ", ".join(type(arg).__name__ for arg in args)
        raise UnsafePickleError(f"pickle calls {kind.__name__}({shape}), which no plain value needs")

    return build


def _are_members(args: tuple[Any, ...]) -> bool:
    return len(args) == 1 and type(args[0]) in (list, tuple) and all(type(item) in _MEMBER_TYPES for item in args[0])


def _are_bytes(args: tuple[Any, ...]) -> bool:
    if len(args) == 1:
        return type(args[0]) is bytes
    return len(args) == 2 and type(args[0]) is str and args[1] in ("latin1", "latin-1")


_ALLOWED_GLOBALS = {
    (module, name): _plain_call(getattr(builtins, name))
    for module in ("builtins", "__builtin__")
    for name in _PLAIN_TYPES
}


def _protocol2_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol 2 calls to rebuild bytes; latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise UnsafePickleError(f"pickle calls _codecs.encode with {encoding!r}, not plain bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS[("_codecs", "encode")] = _protocol2_bytes


class _PlainValueUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        raise UnsafePickleError(f"pickle references {module}.{name}, which is not a plain value")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids, which plain values never need")


def safe_loads(
    data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_PICKLE_BYTES, limits: PickleLimits = DEFAULT_LIMITS
) -> Any:
    """Unpickle ``data`` if it holds only plain builtin values, within bounded time and memory.

    Args:
        data: The pickled bytes.
        max_bytes: Refuse anything larger, before reading it.
        limits: The structural bounds (a DLQ job's by default; ``QUEUE_LIMITS`` for queue rows).

    Returns:
        The value: dicts, lists, tuples, sets, str, bytes, int, float, bool and None only.

    Raises:
        UnsafePickleError: The data is not bytes, too large, malformed, names any callable
            or class other than the plain builtin containers, or passes a limit of
            ``limits`` (nesting, size with shared parts counted
            in full, opcodes, ...); the message names the limit.
    """
    if type(data) is bytes:  # a BLOB from SQLite: no copy
        blob, size = data, len(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        blob = b"" if size > max_bytes else bytes(data)  # never copied when too large
    else:
        raise UnsafePickleError(f"expected pickled bytes, got {type(data).__name__}")
    if size > max_bytes:
        raise UnsafePickleError(f"pickle is {size} bytes, more than the {max_bytes}-byte limit")
    quick = plainly_safe(blob)  # the common job takes the quick yes; anything else the full check
    if not quick:
        try:
            check_pickle(blob, limits)
        except PickleLimitError as error:
            raise UnsafePickleError(str(error)) from None
    try:
        # A quick yes holds no opcode that fetches a global, calls, builds or names a persistent
        # id: the plain C loader cannot reach ``find_class`` for it, and is faster to set up.
        value = pickle.loads(blob) if quick else _PlainValueUnpickler(io.BytesIO(blob)).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # any malformed input: truncated, wrong opcodes, bad encoding ...
        raise UnsafePickleError(f"not a valid pickle ({type(error).__name__}: {error})") from None
    return value
