"""Decoding of pickled jobs that can never run code, nor take unbounded time, memory or stack.

PlexSync stores jobs as pickles, in the DLQ and in the live queue. A pickle can name any
importable callable and have the unpickler call it, so a tampered or corrupt row could run
code. Here only plain builtin values may come back; anything else is refused before it runs.
A pickle of plain values can still be built to crash or stall whoever loads it (a
million-deep tuple, a memo bomb with 10**10 shared leaves); ``pickle_scan`` walks its
opcodes first and refuses it, with the limit it passed, before anything is built.
"""

from __future__ import annotations

import builtins
import io
import pickle
from typing import Any, Callable

from .pickle_limits import DEFAULT_LIMITS, PickleLimitError, PickleLimits
from .pickle_fast import needs_key_check, plain_keys, plainly_safe
from .pickle_scan import check_pickle

__all__ = ["MAX_PICKLE_BYTES", "QUEUE_MAX_PICKLE_BYTES", "UnsafePickleError", "safe_loads"]

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
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafePickleError(f"expected pickled bytes, got {type(data).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > max_bytes:
        raise UnsafePickleError(f"pickle is {size} bytes, more than the {max_bytes}-byte limit")
    blob = bytes(data)
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
    if quick and needs_key_check(blob) and not plain_keys(value):
        raise UnsafePickleError(
            "pickle uses a float as a dict key or set member; only str, bytes, int, bool and None may be"
        )
    return value
