"""Which scenes still exist in Stash: the recovery's third gate.

Two ways to ask, with one answer: one ``find_scene`` per scene (any object with that
method, as the seed contract says), or a few ``findScenes`` id-range queries per chunk when
the object is a real ``stashapi`` client, remembered by aligned blocks of ids. A Stash
*error* is never taken for a deleted scene: only a real ``null`` (or an id absent from a
complete range answer) is "missing". A refused credential is a configuration error
(``errors.ConfigurationError``) and stops the run.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Iterable, Protocol

import requests

from ..errors import STASH_API_KEY, ConfigurationError, answer_excerpt
from .connection import StashConnection, StashKeyRejected, StashUnavailable

__all__ = ['BLOCK_FETCH_MIN', 'BLOCK_SIZE', 'SceneBlocks', 'SceneLookup', 'SceneStatus', 'StashLookup', 'MAX_RANGES_PER_REQUEST', 'RANGE_GAP', 'STASH_ID_CHUNK', 'id_ranges', 'speaks_graphql']


# ==== scene blocks ==============================================================================
# Which scene ids exist, remembered by aligned blocks of ids that Stash was asked about whole.
#
# Why: a real DLQ's scene ids are scattered over the failure order, so the 1,000 scenes of one
# chunk are spread thinly over the whole id range. Asked chunk by chunk, they make either
# hundreds of tiny ranges (one GraphQL field each) or a few wide ones full of ids nobody
# asked for, and the next chunk asks about the same stretch again. Fetching each touched
# block of ``BLOCK_SIZE`` ids once, and answering later chunks from it, costs Stash at most one
# ``{ id }`` row per id of the blocks the window touches (measured: 100,000 scattered entries
# went from 99 s of Stash requests to about a second). A block touched by only a few ids is
# asked about exactly the first time, and fetched whole only if it is touched again, so a
# window of a few far-apart ids never pays for whole blocks. A recovery now reads its window by
# scene, so each chunk touches one or two blocks and Stash is asked as the run goes rather
# than all at once; a window read in failure order (the seed's ``recover_outage_jobs``) still
# relies on the blocks.

#: Ids per block (aligned: block ``b`` holds ``b * BLOCK_SIZE`` .. ``(b + 1) * BLOCK_SIZE - 1``).
BLOCK_SIZE = 1024
#: A block with at least this many ids in one question is fetched whole at once.
BLOCK_FETCH_MIN = 8


class SceneBlocks:
    """The blocks fetched so far (which of their ids exist) and the blocks asked about before."""

    def __init__(self, size: int = BLOCK_SIZE, fetch_min: int = BLOCK_FETCH_MIN) -> None:
        self.size = size
        self.fetch_min = fetch_min
        self._existing: dict[int, bytearray] = {}  # block -> one byte per id: 1 when the scene exists
        self._asked: set[int] = set()

    def known(self, scene_id: int) -> bool | None:
        """Whether the scene exists, if its block was fetched; None when it was not."""
        block = self._existing.get(scene_id // self.size)
        return None if block is None else bool(block[scene_id % self.size])

    def plan(self, scene_ids: Iterable[int]) -> tuple[list[int], list[tuple[int, int]]]:
        """Split ids whose block is not fetched: ``(ids to ask exactly, block ranges to fetch whole)``.

        Consecutive blocks to fetch are merged into one range.
        """
        by_block: dict[int, list[int]] = {}
        for scene_id in scene_ids:
            if self.known(scene_id) is None:
                by_block.setdefault(scene_id // self.size, []).append(scene_id)
        exact: list[int] = []
        whole: list[int] = []
        for block, ids in sorted(by_block.items()):
            if len(ids) >= self.fetch_min or block in self._asked:
                whole.append(block)
            else:
                exact.extend(ids)
                self._asked.add(block)
        return exact, self._ranges(whole)

    def store(self, ranges: Iterable[tuple[int, int]], existing: Iterable[int]) -> None:
        """Remember the blocks of ``ranges`` (as ``plan`` gave them) with the ids Stash said exist."""
        for low, high in ranges:
            for number in range(low // self.size, high // self.size + 1):
                self._existing.setdefault(number, bytearray(self.size))
        for scene_id in existing:
            bits = self._existing.get(scene_id // self.size)
            if bits is not None:
                bits[scene_id % self.size] = 1

    def _ranges(self, blocks: list[int]) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        for block in blocks:
            low, high = block * self.size, (block + 1) * self.size - 1
            if ranges and ranges[-1][1] + 1 == low:
                ranges[-1] = (ranges[-1][0], high)
            else:
                ranges.append((low, high))
        return ranges


# ==== lookup ====================================================================================
# Which scenes still exist in Stash: the recovery's third gate.
#
# Two ways to ask, with one answer: one ``find_scene`` per scene (any object with that
# method, as the seed contract says), or a few ``findScenes`` id-range queries per chunk when
# the object is a real ``stashapi`` client. A Stash *error* is never taken for a deleted
# scene: only a real ``null`` (or an id absent from a complete range answer) is "missing".
#
# Why ranges and not ``findScenes(scene_ids: [...])``: real Stash answers that argument with
# ``FindMany``, which fails the whole request ("scene with id N not found") as soon as one id
# is missing, and a missing scene is exactly what this gate must detect. An ``id BETWEEN``
# criterion returns the scenes that exist, so one request still answers a thousand ids.
#
# A refused credential (API key or Stash session) is a configuration error, not a Stash
# outage: the lookup raises it (a ``ConfigurationError``, see ``errors``), which stops the run
# with that error, and answers nothing more, since the key cannot become right within the run.

logger = logging.getLogger(__name__)

#: Ids per request, matching the recovery's 1,000-entry chunks. Measured with ``bench`` on
#: 100,000 entries: 500 a chunk 2.8 s, 1,000 2.3-2.6 s, 2,000 2.3 s, 5,000 2.05 s but +8 MB
#: and five times the work lost to one failed request; 1,000 is where round trips stop
#: mattering (one ~7-10 ms request per ~25 ms of work).
STASH_ID_CHUNK = 1000
#: Asked ids at most this far apart share one ``BETWEEN`` range. Merging across a gap of
#: ``g`` costs Stash up to ``g - 1`` extra ``{ id }`` rows and saves it one range query,
#: which costs about as much as 50-100 rows (measured on the test server: ~0.7 ms a range,
#: ~7 us a row), so merging pays up to about that gap; 64 stays on the cheap side.
RANGE_GAP = 64
#: Ranges (aliased ``findScenes`` fields) per request: keeps a request over very sparse
#: ids to a modest document (~15 kB) instead of a thousand root fields.
MAX_RANGES_PER_REQUEST = 100
#: Ids a request may span at most (``BETWEEN`` ranges included): each answer stays a few MB.
MAX_IDS_PER_REQUEST = 8192
#: GraphQL's ``Int`` is 32-bit; larger ids (never a real Stash scene) are asked one by one.
_MAX_GRAPHQL_INT = 2**31 - 1

_RANGE_FIELD = (
    "r{index}: findScenes(scene_filter: {{id: {{value: $l{index}, value2: $h{index}, modifier: BETWEEN}}}},"
    " filter: {{per_page: -1}}) {{ count scenes {{ id }} }}"
)


class SceneStatus(enum.Enum):
    """What Stash said about one scene."""

    PRESENT = "present"
    MISSING = "missing"
    ERROR = "error"


class SceneLookup(Protocol):
    """Answers, for a batch of scene ids, which still exist in Stash."""

    def statuses(self, scene_ids: list[int]) -> dict[int, SceneStatus]:
        """Return a status for every id given."""


def _is_connection_failure(error: BaseException) -> bool:
    return isinstance(error, (StashUnavailable, requests.ConnectionError, requests.Timeout, ConnectionError))


def _is_key_rejection(error: BaseException) -> bool:
    # A bare StashInterface (not a StashConnection) raises Exception("Authentication error") on 401.
    return isinstance(error, StashKeyRejected) or (type(error) is Exception and str(error) == "Authentication error")


def id_ranges(sorted_ids: list[int], gap: int = RANGE_GAP) -> list[tuple[int, int]]:
    """Group sorted, distinct ids into ``(low, high)`` ranges whose neighbours are at most ``gap`` apart."""
    ranges: list[tuple[int, int]] = []
    for scene_id in sorted_ids:
        if ranges and scene_id - ranges[-1][1] <= gap:
            ranges[-1] = (ranges[-1][0], scene_id)
        else:
            ranges.append((scene_id, scene_id))
    return ranges


def _range_query(count: int) -> str:
    variables = ", ".join(f"$l{index}: Int!, $h{index}: Int!" for index in range(count))
    fields = " ".join(_RANGE_FIELD.format(index=index) for index in range(count))
    return f"query PlexSyncRecoverySceneIds({variables}) {{ {fields} }}"


class StashLookup:
    """The one scene lookup: which of a batch of scene ids still exist in Stash.

    A client that runs GraphQL (``stashapi``'s ``StashInterface`` or a ``StashConnection``) is
    asked with ``findScenes`` by id range, one aliased field per range and only ``id``,
    ``chunk_size`` ids at a time, in one request per ``MAX_RANGES_PER_REQUEST`` ranges, with
    what it learnt kept by blocks (``SceneBlocks``). Any other object with ``find_scene(id)``
    (the seed contract allows any) is asked once per scene, as are ids too large for
    GraphQL's ``Int``.

    After a failure the ids not yet answered are marked ``ERROR`` without asking, so a dead
    Stash costs one timeout, not one per entry. A refused credential raises, now and in every
    later call of the run, since it cannot become right within the run.
    """

    def __init__(
        self, stash: Any, *, by_range: bool | None = None, chunk_size: int = STASH_ID_CHUNK, gap: int = RANGE_GAP
    ) -> None:
        """``by_range`` forces one way of asking (tests compare them); by default the client decides."""
        self.stash = stash
        self.by_range = speaks_graphql(stash) if by_range is None else by_range
        self.chunk_size = chunk_size
        self.gap = gap
        self.blocks = SceneBlocks()  # what this run has learnt, block by block
        self.key_rejected: ConfigurationError | None = None

    def statuses(self, scene_ids: list[int]) -> dict[int, SceneStatus]:
        """Return a status for every id given.

        Raises:
            ConfigurationError: Stash refused the API key or the session.
        """
        self._refuse_if_rejected()
        if not self.by_range:
            return self._one_by_one(scene_ids)
        wanted = sorted(set(scene_ids))
        oversized = [scene_id for scene_id in wanted if scene_id > _MAX_GRAPHQL_INT]
        if oversized:
            wanted = wanted[: len(wanted) - len(oversized)]
        answers: dict[int, SceneStatus] = {}
        for offset in range(0, len(wanted), self.chunk_size):
            chunk = wanted[offset : offset + self.chunk_size]
            try:
                exact, whole = self.blocks.plan(chunk)
                self.blocks.store(whole, self._existing_in_ranges(whole))
                found = self._existing(exact) if exact else set()
            except Exception as error:
                self._refuse_if_rejected(error)
                logger.warning("Stash could not say which of %d scenes exist: %s", len(chunk), _describe(error))
                answers.update(dict.fromkeys(wanted[offset:], SceneStatus.ERROR))
                break
            for scene_id in chunk:
                cached = self.blocks.known(scene_id)
                present = cached if cached is not None else scene_id in found
                answers[scene_id] = SceneStatus.PRESENT if present else SceneStatus.MISSING
        if oversized:
            answers.update(self._one_by_one(oversized))
        return answers

    def _one_by_one(self, scene_ids: list[int]) -> dict[int, SceneStatus]:
        answers: dict[int, SceneStatus] = {}
        for index, scene_id in enumerate(scene_ids):
            try:
                scene = self.stash.find_scene(scene_id)
            except Exception as error:
                self._refuse_if_rejected(error)
                logger.warning("Stash could not say whether scene %s exists: %s", scene_id, _describe(error))
                answers[scene_id] = SceneStatus.ERROR
                if _is_connection_failure(error):
                    answers.update(dict.fromkeys(scene_ids[index + 1 :], SceneStatus.ERROR))
                    break
                continue
            answers[scene_id] = SceneStatus.MISSING if scene is None else SceneStatus.PRESENT
        return answers

    def _refuse_if_rejected(self, error: BaseException | None = None) -> None:
        """Raise the refused credential's ``ConfigurationError`` if ``error`` is one (or one was seen)."""
        if error is not None and self.key_rejected is None and _is_key_rejection(error):
            self.key_rejected = (
                error if isinstance(error, StashKeyRejected) else ConfigurationError("Stash rejected the API key", STASH_API_KEY)
            )
        if self.key_rejected is not None:
            raise self.key_rejected

    def _existing(self, chunk: list[int]) -> set[int]:
        return self._existing_in_ranges(id_ranges(chunk, self.gap))

    def _existing_in_ranges(self, ranges: list[tuple[int, int]]) -> set[int]:
        found: set[int] = set()
        for batch in _request_batches(ranges):
            found.update(self._existing_in(batch))
        return found

    def _existing_in(self, ranges: list[tuple[int, int]]) -> set[int]:
        variables: dict[str, int] = {}
        for index, (low, high) in enumerate(ranges):
            variables[f"l{index}"], variables[f"h{index}"] = low, high
        data = self.stash.call_GQL(_range_query(len(ranges)), variables)
        # stashapi turns a GraphQL error into {} (RAISE_GQL_ERRORS is off): that is an error, not "none exist".
        found: set[int] = set()
        for index in range(len(ranges)):
            result = data[f"r{index}"]
            scenes = result["scenes"]
            if int(result["count"]) != len(scenes):
                raise ValueError(f"findScenes returned {len(scenes)} of {result['count']} scenes")
            found.update(int(scene["id"]) for scene in scenes)
        return found


def _request_batches(ranges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Ranges grouped into requests of at most ``MAX_RANGES_PER_REQUEST`` ranges and ``MAX_IDS_PER_REQUEST`` ids.

    The id bound keeps each answer (and the memory stashapi parses it into) small, however
    many blocks a window touches; a wider range is split.
    """
    batches: list[list[tuple[int, int]]] = [[]]
    room = MAX_IDS_PER_REQUEST
    for low, high in ranges:
        while low <= high:
            if len(batches[-1]) == MAX_RANGES_PER_REQUEST or room == 0:
                batches.append([])
                room = MAX_IDS_PER_REQUEST
            part_high = min(high, low + room - 1)
            batches[-1].append((low, part_high))
            room -= part_high - low + 1
            low = part_high + 1
    return [batch for batch in batches if batch]


def speaks_graphql(stash: Any) -> bool:
    """Whether ``stash`` is a ``stashapi`` client (or a ``StashConnection``) that can run GraphQL."""
    from stashapi.stashapp import StashInterface

    return isinstance(stash, (StashInterface, StashConnection))


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return "Stash answered with an error instead of data (see the stash log)"
    if isinstance(error, StashUnavailable):  # its message says it all, in plain words
        return str(error)
    return f"{type(error).__name__}: {answer_excerpt(str(error))}"
