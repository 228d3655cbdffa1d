"""Helpers for testing a subscriber: record the signals, fire an outage at a plugin, build a PlexSync data dir.

The pytest fixtures of :mod:`.pytest_plugin` hand these out; they work without pytest too.
Importing this module loads neither the test servers nor ``graphql``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..dev.plexsync_data import PlexSyncData
from ..engine import RecoveryResult
from ..events import event_signals
from ..plugin import RecoveryPlugin
from ..signals import outage_ended, send_isolated
from ..sync_queue.dlq import DeadLetterQueue, validate_window, whole_seconds
from ..sync_queue.operations import QUEUE_DIR_NAME, get_queued_scene_ids, make_job

__all__ = ["AllScenesStash", "DataDir", "Heard", "HealthyPlex", "SignalRecorder", "fire_outage", "make_plugin"]

@dataclass(frozen=True)
class Heard:
    """One signal delivery: its name, its sender and its keyword arguments."""

    name: str
    sender: Any
    kwargs: dict[str, Any] = field(default_factory=dict)


class SignalRecorder:
    """Records every outage and recovery signal sent while connected (``with recorder:`` or ``connect``)."""

    def __init__(self) -> None:
        self.heard: list[Heard] = []
        self._receivers: dict[str, Callable[..., None]] = {}

    def _receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.heard.append(Heard(name, sender, kwargs))

        return receive

    def connect(self) -> "SignalRecorder":
        """Start recording; return self."""
        for name, signal in event_signals().items():
            signal.connect(self._receivers.setdefault(name, self._receiver(name)), weak=False)
        return self

    def disconnect(self) -> None:
        """Stop recording."""
        signals = event_signals()
        for name, receiver in self._receivers.items():
            signals[name].disconnect(receiver)

    def __enter__(self) -> "SignalRecorder":
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def names(self) -> list[str]:
        """The signals heard, in the order this recorder heard them.

        blinker calls a signal's receivers in no set order, and a recovery runs inside the
        delivery of ``outage_ended``: its ``recovery_completed`` may reach the recorder first.
        """
        return [heard.name for heard in self.heard]

    def payloads(self, name: str) -> list[dict[str, Any]]:
        """The keyword arguments of each delivery of signal ``name``."""
        return [heard.kwargs for heard in self.heard if heard.name == name]

    @property
    def results(self) -> list[RecoveryResult]:
        """The ``RecoveryResult`` of every ``recovery_completed``."""
        return [payload["result"] for payload in self.payloads("recovery_completed")]

    @property
    def errors(self) -> list[BaseException]:
        """The error of every ``recovery_failed``."""
        return [payload["error"] for payload in self.payloads("recovery_failed")]

    def clear(self) -> None:
        """Forget what was heard."""
        self.heard.clear()


class DataDir(PlexSyncData):
    """A PlexSync data directory (``dlq.db`` and ``queue/`` as PlexSync writes them), with shortcuts."""

    def add_entry(
        self,
        scene_id: int,
        *,
        failed_at: float,
        error_type: str = "PlexServerDown",
        update_type: str = "metadata",
        data: Any = None,
    ) -> int:
        """Dead-letter a job for ``scene_id`` as PlexSync does; return the DLQ row id."""
        job = make_job(scene_id, update_type, data if data is not None else {"title": f"Scene {scene_id}"})
        return self.add_dead_letter(job, error_type=error_type, retry_count=3, failed_at=failed_at)

    def queued_scene_ids(self) -> set[int]:
        """The scenes with a live job (pending or taken) in PlexSync's queue."""
        return get_queued_scene_ids(self.data_dir / QUEUE_DIR_NAME)


class HealthyPlex:
    """A Plex that always answers its health check (no network)."""

    def query(self, key: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> str:
        return "<MediaContainer/>"


class AllScenesStash:
    """A Stash that has every scene except ``missing`` (no network)."""

    def __init__(self, missing: set[int] | None = None) -> None:
        self.missing = set(missing or ())

    def find_scene(self, scene_id: int) -> dict[str, str] | None:
        return None if scene_id in self.missing else {"id": str(scene_id)}


def make_plugin(data: PlexSyncData | str | Path, *, plex: Any = None, stash: Any = None) -> RecoveryPlugin:
    """A ``RecoveryPlugin`` over ``data`` (not connected); an always-healthy Plex and a full Stash by default.

    Call ``close()`` when done (it closes the queue the plugin opens on its first run).
    """
    data_dir = Path(data.data_dir if isinstance(data, PlexSyncData) else data)
    return RecoveryPlugin(
        DeadLetterQueue(data_dir), None, stash if stash is not None else AllScenesStash(),
        plex if plex is not None else HealthyPlex(), data_dir,
    )


def fire_outage(plugin: RecoveryPlugin, start: float, end: float, *, sender: Any = "plexsync-test-kit") -> RecoveryResult:
    """Send ``outage_ended`` (through the signal, to every receiver) and return the plugin's result for it.

    The plugin is connected for the call if it was not. Subscribers connected to
    ``recovery_completed`` hear the run as they would in production.

    Raises:
        AssertionError: The plugin sent ``recovery_failed`` instead (the message says why).
    """
    low, high = whole_seconds(*validate_window(start, end))
    with SignalRecorder() as recorder:
        connected_here = not plugin.connected
        if connected_here:
            plugin.connect()
        try:
            send_isolated(outage_ended, sender, start=start, end=end)
        finally:
            if connected_here:
                plugin.disconnect()
    mine = [heard for heard in recorder.heard if heard.sender is plugin]
    for heard in reversed(mine):
        run_start, run_end = heard.kwargs.get("start"), heard.kwargs.get("end")
        if heard.name != "recovery_completed" or run_start is None or run_end is None:
            continue
        if run_start <= low and high <= run_end:
            result: RecoveryResult = heard.kwargs["result"]
            return result
    errors = [str(heard.kwargs.get("error")) for heard in mine if heard.name == "recovery_failed"]
    raise AssertionError(f"recovery of {start}..{end} did not complete: {'; '.join(errors) or 'no run covered it'}")

