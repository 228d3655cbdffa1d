"""A walk over a pickle's opcodes that enforces ``PickleLimits`` before anything is built.

The walk replays the C unpickler's stack, marks and memo (``pickle_stack``) with a
small record per value instead of the value: ``[expanded size, depth, kind, open]``. A container stays open (may still be filled) until it is placed in another
value; from then on its record is final, so sizes and depths are summed once, and no
value can be made to contain itself. The walk refuses at the first opcode over a limit,
so it never reads more than ``max_opcodes`` opcodes (0.1 to 1.5 us each).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .pickle_limits import DEFAULT_LIMITS, NODE_BYTES, PickleLimitError, PickleLimits
from .pickle_opcodes import (
    BYTES_MAKER, BYTES_MAKERS, COUNTED_SCALARS, DICT, FIXED_SCALARS, FROZENSET, GLOBAL, KEY, KIND_NAMES, LIST,
    OPCODE_NAMES, SET, STEPS, TUPLE, VALUE,
)  # fmt: skip
from .pickle_stack import Record, UnpicklerStack, malformed

__all__ = ["check_pickle"]

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
