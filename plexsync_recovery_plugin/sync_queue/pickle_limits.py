"""The bounds a pickle must stay within to be decoded, whatever its bytes.

A pickle far under the size limit can still take the process down when loaded: a
million-deep tuple crashes the interpreter when it is hashed or freed, a tuple whose
levels each refer a hundred times to the level below has 100**5 leaves to hash or
compare, and a 5,000-deep list breaks re-pickling later. ``pickle_scan`` walks the
opcodes and refuses, before anything is built, a pickle that passes one of these limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DEFAULT_LIMITS", "NODE_BYTES", "PickleLimitError", "PickleLimits", "QUEUE_LIMITS"]


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
