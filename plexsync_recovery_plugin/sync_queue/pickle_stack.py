"""The C unpickler's stack, marks and memo, replayed by ``pickle_scan`` with a record per value.

Only what keeps the replay faithful lives here: where a MARK fences off the values below
it, what POP does when a MARK sits on top, how memo indexes are read. A pickle that
CPython's unpickler would reject for these reasons is refused as "not a valid pickle".
"""

from __future__ import annotations

from typing import Any

from .pickle_limits import PickleLimitError, PickleLimits

__all__ = ["Record", "UnpicklerStack", "malformed"]

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

