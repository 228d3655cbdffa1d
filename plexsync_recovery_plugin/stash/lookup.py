"""Which scenes still exist in Stash: the recovery's third gate.

Two ways to ask, with one answer: one ``find_scene`` per scene (any object with that
method, as the seed contract says), or one ``findScenes(scene_ids: [...])`` per chunk when
the object is a real ``stashapi`` client. A Stash *error* is never taken for a deleted
scene: only a real ``null`` is "missing".
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Protocol

import requests

from .connection import StashConnection, StashUnavailable

__all__ = [
    "BatchedStashLookup",
    "PerSceneLookup",
    "SceneLookup",
    "SceneStatus",
    "StashUnavailable",
    "STASH_ID_CHUNK",
    "choose_scene_lookup",
]

logger = logging.getLogger(__name__)

#: Ids per ``findScenes`` request: big enough that round trips stop mattering (1 per 1,000
#: entries), small enough for SQLite's bound-variable limit in Stash and a modest response.
STASH_ID_CHUNK = 1000

_FIND_SCENE_IDS = (
    "query PlexSyncRecoverySceneIds($ids: [Int!]) {"
    " findScenes(scene_ids: $ids, filter: {per_page: -1}) { count scenes { id } } }"
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


class PerSceneLookup:
    """One ``stash.find_scene(id)`` per scene; works with any object that has that method.

    After a connection-level failure the remaining ids are marked ``ERROR`` without asking,
    so a dead Stash costs one timeout, not one per entry.
    """

    def __init__(self, stash: Any) -> None:
        self.stash = stash

    def statuses(self, scene_ids: list[int]) -> dict[int, SceneStatus]:
        """Ask Stash about each id in turn."""
        answers: dict[int, SceneStatus] = {}
        for index, scene_id in enumerate(scene_ids):
            try:
                scene = self.stash.find_scene(scene_id)
            except Exception as error:
                logger.warning("Stash could not say whether scene %s exists: %s", scene_id, _describe(error))
                answers[scene_id] = SceneStatus.ERROR
                if _is_connection_failure(error):
                    answers.update(dict.fromkeys(scene_ids[index + 1 :], SceneStatus.ERROR))
                    break
                continue
            answers[scene_id] = SceneStatus.MISSING if scene is None else SceneStatus.PRESENT
        return answers


class BatchedStashLookup:
    """One ``findScenes(scene_ids: [...])`` request per chunk of ids, asking only for ``id``."""

    def __init__(self, stash: Any, chunk_size: int = STASH_ID_CHUNK) -> None:
        self.stash = stash
        self.chunk_size = chunk_size

    def statuses(self, scene_ids: list[int]) -> dict[int, SceneStatus]:
        """Ask Stash about all ids, ``chunk_size`` at a time."""
        answers: dict[int, SceneStatus] = {}
        for offset in range(0, len(scene_ids), self.chunk_size):
            chunk = scene_ids[offset : offset + self.chunk_size]
            try:
                found = self._existing(chunk)
            except Exception as error:
                logger.warning("Stash could not say which of %d scenes exist: %s", len(chunk), _describe(error))
                answers.update(dict.fromkeys(scene_ids[offset:], SceneStatus.ERROR))
                break
            for scene_id in chunk:
                answers[scene_id] = SceneStatus.PRESENT if scene_id in found else SceneStatus.MISSING
        return answers

    def _existing(self, chunk: list[int]) -> set[int]:
        data = self.stash.call_GQL(_FIND_SCENE_IDS, {"ids": chunk})
        # stashapi turns a GraphQL error into {} (RAISE_GQL_ERRORS is off): that is an error, not "none exist".
        result = data["findScenes"]
        scenes = result["scenes"]
        if int(result["count"]) != len(scenes):
            raise ValueError(f"findScenes returned {len(scenes)} of {result['count']} scenes")
        return {int(scene["id"]) for scene in scenes}


def choose_scene_lookup(stash: Any, *, batched: bool = True) -> SceneLookup:
    """Pick the batched lookup for a ``stashapi`` client, the per-scene one for anything else.

    Args:
        stash: A ``StashInterface``, a ``StashConnection``, or any object with ``find_scene``.
        batched: False forces one ``find_scene`` per scene (``bench`` compares both ways).
    """
    if batched and _speaks_graphql(stash):
        return BatchedStashLookup(stash)
    return PerSceneLookup(stash)


def _speaks_graphql(stash: Any) -> bool:
    from stashapi.stashapp import StashInterface

    return isinstance(stash, (StashInterface, StashConnection))


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return "Stash answered with an error instead of data (see the stash log)"
    return f"{type(error).__name__}: {error}"

