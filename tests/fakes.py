"""Plain stand-ins for Plex, Stash and signal receivers, for tests where they are not the point.

Kept free of pytest so that the scripts the subprocess tests run can import them too.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

__all__ = ["DownPlex", "HealthyPlex", "PlainStash", "Recorder", "SwitchablePlex", "timed_runs"]


class PlainStash:
    """A Stash with every scene except ``deleted``; counts the questions it was asked."""

    def __init__(self, deleted: Iterable[int] = ()) -> None:
        self.deleted = set(deleted)
        self.asked: list[int] = []

    def find_scene(self, scene_id: int) -> dict[str, str] | None:
        self.asked.append(scene_id)
        return None if scene_id in self.deleted else {"id": str(scene_id)}


class HealthyPlex:
    """A Plex whose ``/identity`` always answers."""

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> str:
        return "<MediaContainer/>"


class DownPlex:
    """A Plex that refuses every connection."""

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> str:
        raise ConnectionError("connection refused")


class SwitchablePlex:
    """A Plex whose health a test flips with ``up``."""

    def __init__(self, up: bool = True) -> None:
        self.up = up

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> str:
        if not self.up:
            raise ConnectionError("connection refused")
        return "<MediaContainer/>"


class Recorder:
    """Collects the keyword payloads a signal delivered."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})


def timed_runs(real_run: Callable[..., Any], runs: list[dict[str, Any]]) -> Callable[..., Any]:
    """Wrap a recovery function so that each call appends when it entered, left, and what it recovered."""

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        entered = time.monotonic()
        result = real_run(*args, **kwargs)
        runs.append({"enter": entered, "exit": time.monotonic(), "recovered": result.recovered_scene_ids})
        return result

    return timed_run


class Clock:
    """A clock the test moves by hand: ``clock.now += 5``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
