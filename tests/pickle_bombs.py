"""Hand-written hostile pickles, built opcode by opcode (no Python recursion, no pickler).

Each builder returns bytes a tampered DLQ or queue row could hold. The opcodes are the
protocol-4 ones from ``pickletools`` unless the name says otherwise.
"""

from __future__ import annotations

import gc
import pickle
import struct
import time
from typing import Any

from plexsync_recovery_plugin.sync_queue.operations import make_job

PROTO4 = b"\x80\x04"
MEMOIZE, MARK, STOP, NONE = b"\x94", b"(", b".", b"N"
EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE, APPEND, SETITEM, TUPLE, TUPLE1 = b"]", b"}", b")", b"a", b"s", b"t", b"\x85"


def binget(index: int) -> bytes:
    return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)


def dict_keyed_by_deep_tuple(depth: int, *, with_marks: bool) -> bytes:
    """``{((((...),),),): None}``: with marks, 2 bytes a level (MARK ... TUPLE), else TUPLE1 + MEMOIZE."""
    if with_marks:
        key = MARK * depth + EMPTY_TUPLE + TUPLE * depth
    else:
        key = NONE + (TUPLE1 + MEMOIZE) * depth
    return PROTO4 + EMPTY_DICT + key + NONE + SETITEM + STOP


def deep_list(depth: int) -> bytes:
    """``[[[...]]]`` ``depth`` lists deep, as the pickler writes it: all lists first, then the APPENDs."""
    return PROTO4 + EMPTY_LIST * depth + APPEND * (depth - 1) + STOP


def memo_bomb(fanout: int, levels: int, *, as_key: bool = True) -> bytes:
    """Level n+1 is a tuple of ``fanout`` memo references to level n: ``fanout**levels`` leaves, ~2*fanout*levels bytes."""
    out = [PROTO4, NONE, MEMOIZE]  # memo 0: the leaf
    for level in range(levels):
        out.append(MARK + binget(level) * fanout + TUPLE + MEMOIZE)  # memo level + 1
    top = binget(levels)
    out.append(EMPTY_DICT + top + NONE + SETITEM + STOP if as_key else top + STOP)
    return b"".join(out)


def memo_index_bomb(index: int = 0xFFFFFFFF) -> bytes:
    """LONG_BINPUT at a huge index: the C unpickler grows its memo table to twice the index."""
    return PROTO4 + NONE + b"r" + struct.pack("<I", index) + STOP


def tiny_opcodes(total: int) -> bytes:
    """A list of ``total``/2 ints written as BININT1 (2 bytes each): millions of tiny opcodes."""
    count = (total - 6) // 2
    return PROTO4 + EMPTY_LIST + MARK + b"K\x01" * count + b"e" + STOP


def long4_int(size: int) -> bytes:
    return b"\x80\x02\x8b" + struct.pack("<i", size) + b"\x7f" * size + STOP


def text_long(digits: int) -> bytes:
    return b"L" + b"9" * digits + b"L\n" + STOP


def call(module: str, name: str, arguments: bytes) -> bytes:
    """Protocol 2: ``module.name(*arguments)`` where ``arguments`` pushes a tuple."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + arguments + b"R" + STOP


def plexsync_job(scene_id: int = 12345, *, heavy: bool = False) -> dict[str, Any]:
    """A job as PlexSync's hook handler enqueues it; ``heavy`` is the largest we could justify."""
    performers, tags = (40, 150) if heavy else (3, 8)
    data = {
        "title": "A scene title", "studio": "Studio Name", "details": "Some words. " * (250 if heavy else 10),
        "date": "2024-01-01", "rating100": 80, "path": "/media/scenes/file.mp4", "studio_id": "12",
        "performers": [f"Performer {i}" for i in range(performers)], "performer_ids": [str(i) for i in range(performers)],
        "tags": [f"tag-{i}" for i in range(tags)], "tag_ids": [str(i) for i in range(tags)],
        "poster_url": "http://stash:9999/scene/1/screenshot", "background_url": "http://stash:9999/scene/1/bg",
    }  # fmt: skip
    return make_job(scene_id, "metadata", data, now=1771182000.5)


def real_job_pickles() -> list[bytes]:
    """PlexSync-shaped jobs in every protocol: the seeds the fuzz test mutates."""
    return [pickle.dumps(plexsync_job(heavy=heavy), protocol=p) for heavy in (False, True) for p in range(6)]


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    """(result or the exception raised, CPU seconds of this thread): robust against load on the machine.

    The cyclic garbage collector is paused meanwhile: a collection walks every object of the
    test process (pytest, hypothesis, the fixtures), which costs up to tens of milliseconds
    whatever is decoded; decoding itself creates no reference cycles for it to find. A run
    that takes over 20 ms is repeated twice and the fastest counts: CPU time too grows
    when another process shares the core's caches, and the bound is about the decoder's work.
    """
    result, elapsed = _timed_once(function, *args)
    for _ in range(2 if elapsed > 0.020 else 0):
        elapsed = min(elapsed, _timed_once(function, *args)[1])
    return result, elapsed


def _timed_once(function: Any, *args: Any) -> tuple[Any, float]:
    gc.disable()
    start = time.thread_time()
    try:
        result = function(*args)
    except Exception as error:  # the caller checks which exception
        result = error
    finally:
        elapsed = time.thread_time() - start
        gc.enable()
    return result, elapsed
