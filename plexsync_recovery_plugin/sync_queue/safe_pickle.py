"""Decoding of pickled jobs that can never run code.

PlexSync stores jobs as pickles, in the DLQ and in the live queue. A pickle can name any
importable callable and have the unpickler call it, so a tampered or corrupt row could run
code. Here only plain builtin values may come back; anything else is refused before it runs.
"""

from __future__ import annotations

import builtins
import io
import pickle
from typing import Any

__all__ = ["MAX_PICKLE_BYTES", "UnsafePickleError", "safe_loads"]

#: Jobs are a few kilobytes; anything far larger is corrupt or hostile, not a job.
MAX_PICKLE_BYTES = 4 * 1024 * 1024

# Names a pickle of plain values may reference: protocols before 4 rebuild sets, bytes and
# bytearrays by calling these (under Python 2's module name too), never anything else.
_PLAIN_TYPES = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "bool")


def _without_numbers(kind: type) -> Any:
    """``kind`` as a pickle may call it: never with a number, so ``bytes(2**31)`` cannot allocate 2 GiB."""

    def build(*args: Any) -> Any:
        if any(isinstance(arg, (int, float)) for arg in args):
            raise UnsafePickleError(f"pickle calls {kind.__name__} with a number, which could allocate without limit")
        return kind(*args)

    return build


_ALLOWED_GLOBALS = {
    (module, name): _without_numbers(getattr(builtins, name)) for module in ("builtins", "__builtin__") for name in _PLAIN_TYPES
}


def _protocol2_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol 2 calls to rebuild bytes; latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise UnsafePickleError(f"pickle calls _codecs.encode with {encoding!r}, not plain bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS[("_codecs", "encode")] = _protocol2_bytes


class UnsafePickleError(ValueError):
    """A pickle was refused: it names code, is malformed, or is too large."""


class _PlainValueUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        raise UnsafePickleError(f"pickle references {module}.{name}, which is not a plain value")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids, which plain values never need")


def safe_loads(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Unpickle ``data`` if it holds only plain builtin values.

    Args:
        data: The pickled bytes.
        max_bytes: Refuse anything larger, before reading it.

    Returns:
        The value: dicts, lists, tuples, sets, str, bytes, int, float, bool and None only.

    Raises:
        UnsafePickleError: The data is not bytes, too large, malformed, or names any
            callable or class other than the plain builtin containers.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafePickleError(f"expected pickled bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise UnsafePickleError(f"pickle is {len(data)} bytes, more than the {max_bytes}-byte limit")
    try:
        return _PlainValueUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # any malformed input: truncated, wrong opcodes, bad encoding ...
        raise UnsafePickleError(f"not a valid pickle ({type(error).__name__}: {error})") from None
