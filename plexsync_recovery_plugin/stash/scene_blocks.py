"""Which scene ids exist, remembered by aligned blocks of ids that Stash was asked about whole.

Why: a real DLQ's scene ids are scattered over the failure order, so the 1,000 scenes of one
chunk are spread thinly over the whole id range. Asked chunk by chunk, they make either
hundreds of tiny ranges (one GraphQL field each) or a few wide ones full of ids nobody
asked for, and the next chunk asks about the same stretch again. Fetching each touched
block of ``BLOCK_SIZE`` ids once, and answering later chunks from it, costs Stash at most one
``{ id }`` row per id of the blocks the window touches (measured: 100,000 scattered entries
went from 99 s of Stash requests to about a second). A block touched by only a few ids is
asked about exactly the first time, and fetched whole only if it is touched again, so a
window of a few far-apart ids never pays for whole blocks. A recovery now reads its window by
scene, so each chunk touches one or two blocks and Stash is asked as the run goes rather
than all at once; a window read in failure order (the seed's ``recover_outage_jobs``) still
relies on the blocks.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["BLOCK_FETCH_MIN", "BLOCK_SIZE", "SceneBlocks"]

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
