"""The Stash test server's scenes, and how Stash's ``findScene``/``findScenes`` select and page them.

Why apart from the server: what a scene record holds and how Stash's queries pick scenes
(strict id lists, id criteria, title search, sorting, paging) is Stash's behaviour, not
HTTP plumbing. Scenes live in a dict under one lock, so that a benchmark with 100,000
scenes stays fast. Errors a real Stash answers as GraphQL errors raise ``GraphQLError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Callable

from graphql import GraphQLError

from .stash_schema import SCENE_FIELDS

__all__ = ["SceneStore", "parse_id", "parse_id_list"]

_DEFAULT_PER_PAGE = 25


class SceneStore:
    """Scenes by id, safe to use from the server's connection threads."""

    def __init__(self) -> None:
        self._scenes: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, scene_id: int, **fields: Any) -> dict[str, Any]:
        """Create or replace one scene; return a copy of the record (see ``StashTestServer.add_scene``).

        Raises:
            ValueError: ``scene_id`` is not a positive integer.
            TypeError: An unknown field was given.
        """
        unknown = set(fields) - set(SCENE_FIELDS)
        if unknown:
            raise TypeError(f"unknown Scene fields: {sorted(unknown)}")
        record = _new_scene(_check_scene_id(scene_id), _now())
        record.update(fields)
        record["urls"] = tuple(record["urls"])
        for stamp in ("created_at", "updated_at"):
            if isinstance(record[stamp], datetime):
                record[stamp] = record[stamp].isoformat()
        with self._lock:
            self._scenes[scene_id] = record
        return dict(record)

    def add_many(self, scene_ids: Iterable[int]) -> None:
        """Create or replace many scenes with default fields; none is added if an id is bad.

        Raises:
            ValueError: An id is not a positive integer.
        """
        stamp = _now()
        records = {_check_scene_id(scene_id): _new_scene(scene_id, stamp) for scene_id in scene_ids}
        with self._lock:
            self._scenes.update(records)

    def delete(self, scene_id: int) -> bool:
        """Delete one scene; True if it existed."""
        with self._lock:
            return self._scenes.pop(scene_id, None) is not None

    def ids(self) -> set[int]:
        """A copy of the ids of all scenes."""
        with self._lock:
            return set(self._scenes)

    def get(self, scene_id: int) -> dict[str, Any] | None:
        """The scene with this id, or None."""
        with self._lock:
            return self._scenes.get(scene_id)

    def find_many(self, wanted: list[int], find_filter: dict[str, Any], *, strict: bool) -> dict[str, Any]:
        """``findScenes`` by id list: strict as real Stash's FindMany, or lenient (those that exist, paged)."""
        if strict:
            return self._find_many_strict(wanted)
        with self._lock:
            found = (self._scenes.get(key) for key in sorted(set(wanted)))
            scenes = [scene for scene in found if scene is not None]
        return _found(scenes, _page(scenes, find_filter))

    def find_filtered(self, find_filter: dict[str, Any], id_criterion: dict[str, Any] | None) -> dict[str, Any]:
        """``findScenes`` without an id list: the id criterion, ``q``, ``sort``/``direction`` and paging."""
        scenes = self._query(find_filter, id_criterion)
        return _found(scenes, _page(scenes, find_filter))

    def _find_many_strict(self, wanted: list[int]) -> dict[str, Any]:
        """Real Stash's FindMany: every id must exist, input order, no paging."""
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        with self._lock:
            for key in wanted:
                scene = self._scenes.get(key)
                # Stash places each row at the first index of its id, so a repeated id is "not found".
                if scene is None or key in seen:
                    raise GraphQLError(f"scene with id {key} not found")
                seen.add(key)
                found.append(scene)
        return _found(found, found)

    def _query(self, find_filter: dict[str, Any], id_criterion: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Scenes matching the id criterion and ``q`` (case-insensitive title substring), sorted as asked."""
        with self._lock:
            if id_criterion is None:
                scenes = list(self._scenes.values())
            else:
                scenes = _select_by_id(self._scenes, id_criterion)
        text = (find_filter.get("q") or "").casefold()
        if text:
            scenes = [scene for scene in scenes if text in (scene["title"] or "").casefold()]
        reverse = find_filter.get("direction") == "DESC"
        if find_filter.get("sort") == "title":
            scenes.sort(key=lambda scene: ((scene["title"] or "").casefold(), int(scene["id"])),
                        reverse=reverse)
        else:
            scenes.sort(key=lambda scene: int(scene["id"]), reverse=reverse)
        return scenes


def _found(matching: list[dict[str, Any]], page: list[dict[str, Any]]) -> dict[str, Any]:
    """``FindScenesResultType``: ``count`` is every match, ``scenes`` the page."""
    return {"count": len(matching), "duration": 0.0, "filesize": 0.0, "scenes": page}


def _select_by_id(scenes: dict[int, dict[str, Any]], criterion: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply ``scene_filter: {id: IntCriterionInput}`` the way Stash's SQL does (BETWEEN is inclusive)."""
    modifier, low, high = criterion["modifier"], criterion["value"], criterion.get("value2")
    if modifier in ("BETWEEN", "NOT_BETWEEN") and high is None:
        raise GraphQLError(f"{modifier} needs value2")
    if modifier == "BETWEEN" and high is not None and high - low < len(scenes):  # a short range: look its ids up
        found = (scenes.get(key) for key in range(low, high + 1))
        return [scene for scene in found if scene is not None]
    tests = {
        "EQUALS": lambda key: key == low,
        "NOT_EQUALS": lambda key: key != low,
        "GREATER_THAN": lambda key: key > low,
        "LESS_THAN": lambda key: key < low,
        "BETWEEN": lambda key: low <= key <= high,
        "NOT_BETWEEN": lambda key: key < low or key > high,
    }
    if modifier not in tests:
        raise GraphQLError(f"modifier {modifier} is not supported for id")
    matches: Callable[[int], bool] = tests[modifier]
    return [scene for key, scene in scenes.items() if matches(key)]


def _page(scenes: list[dict[str, Any]], find_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply ``page`` (1-based) and ``per_page`` (25 by default, negative for all), as Stash does."""
    per_page = find_filter.get("per_page")
    per_page = _DEFAULT_PER_PAGE if per_page is None else per_page
    if per_page < 0:
        return scenes
    page = max(find_filter.get("page") or 1, 1)
    start = (page - 1) * per_page
    return scenes[start : start + per_page]


def parse_id(value: str) -> int:
    """A GraphQL ``ID`` as Stash parses it (``strconv.Atoi``).

    Raises:
        GraphQLError: Not a whole number, with Stash's message.
    """
    try:
        return int(value)
    except ValueError:
        raise GraphQLError(f'strconv.Atoi: parsing "{value}": invalid syntax') from None


def parse_id_list(values: list[str]) -> list[int]:
    """Stash's handling of ``ids: [ID!]``: duplicates and non-numbers are errors.

    Raises:
        GraphQLError: A duplicate or non-numeric id, with Stash's message.
    """
    if len(set(values)) != len(values):
        duplicate = next(value for index, value in enumerate(values) if value in values[:index])
        raise GraphQLError(f"validating ids: duplicate id found: {duplicate}")
    try:
        return [int(value) for value in values]
    except ValueError as error:
        raise GraphQLError(f"converting ids: {error}") from None


def _new_scene(scene_id: int, stamp: str) -> dict[str, Any]:
    return {
        "id": str(scene_id),
        "title": f"Scene {scene_id}",
        "code": None,
        "details": None,
        "urls": (),  # a tuple keeps the record free of containers, so the GC ignores it
        "date": None,
        "rating100": None,
        "organized": False,
        "o_counter": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _check_scene_id(scene_id: int) -> int:
    if isinstance(scene_id, bool) or not isinstance(scene_id, int) or scene_id < 1:
        raise ValueError(f"scene ids are positive integers, got {scene_id!r}")
    return scene_id
