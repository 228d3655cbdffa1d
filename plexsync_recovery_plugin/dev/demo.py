"""The one-command demo: a real outage, detected and recovered end to end, on loopback.

It starts the Plex and Stash test servers, fills a DLQ the way PlexSync would during an
outage, takes Plex down and up under the real watch loop (short intervals), and lets the
tracker and the plugin do the rest. Nothing outside a temporary directory is touched.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..decode import safe_loads
from ..engine import RecoveryResult
from ..outages import DetectedOutages
from ..plex.exceptions import PlexAuthError, PlexServerDown, PlexTemporaryError
from ..plex.health import PlexConnection
from ..plugin import RecoveryPlugin
from ..signals import outage_ended, outage_started, recovery_completed
from ..sqlite_uri import sqlite_uri
from ..stash.connection import StashConnection
from ..sync_queue.dlq import DeadLetterQueue
from ..sync_queue.operations import QUEUE_FILE_NAME, QUEUE_TABLE, enqueue, make_job, open_queue
from ..worker.watch import WatchDaemon, WatchSettings
from .plexsync_data import PlexSyncData

__all__ = ["DemoReport", "run_demo"]

logger = logging.getLogger(__name__)

_STASH_SCENES = range(1, 41)
_DELETED_FROM_STASH = (3, 7)
_ALREADY_QUEUED = (5, 9)
_OUTAGE_SCENES = range(1, 13)


@dataclass
class DemoReport:
    """What the demo saw.

    Attributes:
        outage: The outage the watch daemon recorded (``Outage.as_dict``).
        result: The ``RecoveryResult`` carried by ``recovery_completed``.
        queue: Pending jobs in the queue afterwards: ``(scene_id, update_type, origin)``.
        dlq_entries: DLQ rows before and after (recovery never deletes one).
        signals: Signals in the order they were sent, with their time.
        seconds: How long the whole demo took.
    """

    outage: dict[str, Any] = field(default_factory=dict)
    result: RecoveryResult | None = None
    queue: list[tuple[int, str, str]] = field(default_factory=list)
    dlq_entries: tuple[int, int] = (0, 0)
    signals: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0


class _Timeline:
    """Records signals as they are sent and lets the demo wait for one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []
        self.result: RecoveryResult | None = None
        self.started = threading.Event()
        self.completed = threading.Event()

    def on_started(self, sender: Any, **kwargs: Any) -> None:
        self.seen.append(("outage_started", time.time()))
        self.started.set()

    def on_ended(self, sender: Any, *, end: float, **kwargs: Any) -> None:
        # blinker calls receivers in no set order: date it by the outage's end, not by this call
        self.seen.append(("outage_ended", end))
        self.seen.sort(key=lambda item: item[1])

    def on_completed(self, sender: Any, *, result: RecoveryResult, **kwargs: Any) -> None:
        self.seen.append(("recovery_completed", time.time()))
        self.result = result
        self.completed.set()


def _dead_letter(plexsync: PlexSyncData, scene_id: int, error: Exception, failed_at: float) -> None:
    """Dead-letter a job as PlexSync's worker does (the plugin itself never writes ``dlq.db``)."""
    job = make_job(scene_id, "metadata", {"title": f"Scene {scene_id}", "studio": "Demo Studio"})
    plexsync.add_dead_letter(job, error_type=type(error).__name__, error_message=str(error), retry_count=3,
                             failed_at=failed_at)


def _fill_dlq_during_outage(plexsync: PlexSyncData, now: float) -> None:
    """What PlexSync's worker dead-letters while Plex is down."""
    for scene_id in _OUTAGE_SCENES:
        _dead_letter(plexsync, scene_id, PlexServerDown(f"Cannot reach Plex to update scene {scene_id}"), now)
    _dead_letter(plexsync, 11, PlexServerDown("Cannot reach Plex (second attempt of scene 11)"), now)
    _dead_letter(plexsync, 20, PlexAuthError("(401) unauthorized"), now)
    _dead_letter(plexsync, 21, PlexTemporaryError("(503) service_unavailable"), now)


def _pending_jobs(queue_dir: Path, recovered: set[int]) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(sqlite_uri(queue_dir / QUEUE_FILE_NAME, "ro"), uri=True)
    try:
        rows = conn.execute(f"SELECT data FROM {QUEUE_TABLE} WHERE status < 2 ORDER BY _id").fetchall()
    finally:
        conn.close()
    jobs = []
    for (blob,) in rows:
        job = safe_loads(blob)
        origin = "recovered from the DLQ" if job["scene_id"] in recovered else "queued before the outage"
        jobs.append((job["scene_id"], job["update_type"], origin))
    return jobs


def run_demo(say: Callable[[str], None], *, interval: float = 0.2, timeout: float = 12.0) -> DemoReport:
    """Run the whole flow and return what happened.

    Args:
        say: Called with one line of narration per step.
        interval: Seconds between Plex probes of the watch loop.
        timeout: Seconds to wait for each step before giving up.

    Raises:
        TimeoutError: A step did not happen in time (the servers are stopped either way).
    """
    from .plex_server import PlexTestServer
    from .stash_server import StashTestServer

    began = time.monotonic()
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="plexsync-recovery-demo-") as temp, PlexTestServer(
        token=token
    ) as plex_server, StashTestServer(scenes=_STASH_SCENES) as stash_server:
        data_dir = Path(temp)
        say(f"data dir {data_dir}; Plex test server at {plex_server.url}, Stash test server at {stash_server.url}")
        stage = _Stage(data_dir, PlexConnection(plex_server.url, token, timeout=1.0),
                       StashConnection(stash_server.url, timeout=5.0))
        try:
            stage.set_up(stash_server)
            say(
                f"Stash has scenes 1-40 except {list(_DELETED_FROM_STASH)}; scenes {list(_ALREADY_QUEUED)} are"
                " already queued; the DLQ holds 3 entries from yesterday's outage"
            )
            report = stage.outage(plex_server, say, interval=interval, timeout=timeout)
        finally:
            stage.close()
    report.seconds = time.monotonic() - began
    return report


class _Stage:
    """The demo's data directory, files and clients, and the outage played on them."""

    def __init__(self, data_dir: Path, plex: PlexConnection, stash: StashConnection) -> None:
        self.data_dir = data_dir
        self.plexsync = PlexSyncData(data_dir)
        self.plexsync.create_dlq()  # PlexSync creates dlq.db when its worker starts
        self.dlq = DeadLetterQueue(data_dir)
        self.queue = open_queue(data_dir)
        self.plex, self.stash = plex, stash

    def close(self) -> None:
        self.plex.close()
        self.stash.close()
        self.queue.close()

    def set_up(self, stash_server: Any) -> None:
        """Scenes deleted from Stash, jobs already queued, and dead letters of an older outage."""
        for scene_id in _DELETED_FROM_STASH:
            stash_server.delete_scene(scene_id)
        for scene_id in _ALREADY_QUEUED:
            enqueue(self.queue, scene_id, "metadata", {"title": f"Scene {scene_id}"})
        yesterday = time.time() - 86400
        for scene_id in (30, 31, 32):
            _dead_letter(self.plexsync, scene_id, PlexServerDown("an outage yesterday, outside this window"), yesterday)

    def outage(self, plex_server: Any, say: Callable[[str], None], *, interval: float, timeout: float) -> DemoReport:
        """Take Plex down and up under the real watch loop; report what the plugin recovered."""
        plugin = RecoveryPlugin(self.dlq, self.queue, self.stash, self.plex, self.data_dir)
        settings = WatchSettings(interval=interval, fail_threshold=3, recover_threshold=2, probe_timeout=0.5)
        stop = threading.Event()
        watcher = threading.Thread(target=WatchDaemon(self.plex, plugin, settings).run, args=(stop,),
                                   name="demo-watch", daemon=True)
        timeline = _Timeline()
        with outage_started.connected_to(timeline.on_started), outage_ended.connected_to(
            timeline.on_ended
        ), recovery_completed.connected_to(timeline.on_completed, sender=plugin):
            watcher.start()
            try:
                dlq_before = self._down_and_up(plex_server, timeline, say, interval=interval, timeout=timeout)
            finally:
                stop.set()
                watcher.join(timeout)
        recovered = set(timeline.result.recovered_scene_ids if timeline.result else ())
        return DemoReport(outage=_detected_outage(self.data_dir), result=timeline.result,
                          queue=_pending_jobs(self.data_dir / "queue", recovered),
                          dlq_entries=(dlq_before, self.dlq.get_count()), signals=timeline.seen)

    def _down_and_up(
        self, plex_server: Any, timeline: _Timeline, say: Callable[[str], None], *, interval: float, timeout: float
    ) -> int:
        """Play the outage; return how many DLQ rows there were before the recovery."""
        time.sleep(interval * 3)
        say("taking Plex down (connection refused) ...")
        plex_server.set_mode("down")
        if not timeline.started.wait(timeout):
            raise TimeoutError("the watch loop never reported the outage")
        say("outage_started received; PlexSync dead-letters its jobs while Plex is down")
        _fill_dlq_during_outage(self.plexsync, time.time())
        dlq_before = self.dlq.get_count()
        time.sleep(interval * 3)
        say("bringing Plex back up ...")
        plex_server.set_mode("up")
        if not timeline.completed.wait(timeout):
            raise TimeoutError("no recovery_completed after Plex came back")
        return dlq_before


def _detected_outage(data_dir: Path) -> dict[str, Any]:
    """The newest outage the watch daemon recorded in ``data_dir`` (it keeps them in the plugin's own state)."""
    outages = DetectedOutages(data_dir).outages()
    return outages[-1].as_dict(time.time()) if outages else {}
