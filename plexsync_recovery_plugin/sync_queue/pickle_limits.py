"""Structural limits of a pickle, checked on its opcodes before a single object is built.

A pickle far under the size limit can still take the process down when loaded: a
million-deep tuple crashes the interpreter when it is hashed or freed, a tuple whose
levels refer to the level below a hundred times through the memo has 100**5 leaves to
hash or compare, and a 5,000-deep list breaks re-pickling later. This module walks the
opcodes once, the way the unpickler's stack would see them, and tracks for each value
how deep it nests and how large it would be with every shared part copied in full. It
refuses the pickle as soon as any limit is passed, so the walk costs at most
``max_opcodes`` steps whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "NODE_BYTES", "PickleLimitError", "PickleLimits"]


class PickleLimitError(ValueError):
    """The pickle is malformed or passes a structural limit; the message says which and by how much."""


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on what one pickle may make the unpickler do.

    A PlexSync job (job_id, scene_id, update_type, a data dict of a dozen fields with
    lists of performers and tags, enqueued_at, job_key) is a few hundred opcodes, nests
    4 levels deep and shares no container. Each default is two orders of magnitude or
    more above that, and far below what costs a measurable fraction of a second.

    Attributes:
        max_opcodes: Opcodes read; bounds the walk itself (about 0.3 us each) and the memo.
        max_depth: Nesting of containers; hashing, freeing and re-pickling recurse per level.
        max_containers: Lists, dicts, sets and tuples built.
        max_shared_refs: Memo fetches (or DUPs) of a container; real jobs have none.
        max_expanded: Size in bytes of any value with every shared part counted in full
            (payload bytes plus ``NODE_BYTES`` per value): what comparing, hashing,
            printing or JSON-encoding it would walk.
        max_work: Bytes of dict keys and set members hashed or compared, plus bytes of the
            arguments of calls (protocols below 4 rebuild sets and bytes by calls).
        max_int_bits: Size of an int (19 digits in text, 8 bytes in binary for 64 bits):
            within 64 bits only a handful of distinct ints share a hash, so dict keys
            cannot be made to collide (hash flooding is quadratic).
    """

    max_opcodes: int = 10_000
    max_depth: int = 100
    max_containers: int = 8_000
    max_shared_refs: int = 100
    max_expanded: int = 16 * 1024 * 1024
    max_work: int = 8 * 1024 * 1024
    max_int_bits: int = 64


DEFAULT_LIMITS = PickleLimits()

#: What one value costs in an expanded size besides its payload (about a small object's memory).
NODE_BYTES = 64
