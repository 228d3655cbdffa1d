"""The web door's kit: ``watch --http`` in a process, against the loopback Plex and Stash and a data folder
with outages and dead letters, and a small HTTP client.

The world (times relative to now, so that the last 30 days hold three outages):

* PlexSync's ``outage_history.json``: four closed outages, 40, 20, 6 and 2 days ago; the daemon's
  first start takes them as handled (it never recovers the past by itself).
* ``dlq.db``: scenes 1-5 dead-lettered (``PlexServerDown``) in the outage 2 days ago (scene 5 is gone
  from Stash), a ``PlexNotFound`` there too; scenes 10 and 11 in the outage 6 days ago; a
  ``PlexTemporaryError`` timeout five hours ago, in no outage.
* ``recovery_state.db``: the outage 6 days ago is pending, so the daemon retries it on its first tick
  (scenes 10 and 11 are queued then).

Tests sync with the daemon by polling what it serves, with generous deadlines; nothing sleeps.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from plexsync_recovery_plugin.cli.settings import ENVIRONMENT
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.operations import make_job
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]

#: Secrets, random so that no 8-character piece of them occurs in ordinary text.
PLEX_TOKEN = "Zq8vR2mK7xT4pL9wN3bY"
STASH_API_KEY = "Hn4T8wQ2vZ6yB1cR5mXe"
HTTP_TOKEN = "Vb7Kx2Qm9Tz4Wr6Np3Hd"
SECRETS = (PLEX_TOKEN, STASH_API_KEY, HTTP_TOKEN)
#: Longest a test waits for the daemon to reach a state.
DEADLINE = 30.0

DAY = 86400.0
#: The outages PlexSync recorded: (days ago, minutes long).
OUTAGES = ((40, 10), (20, 20), (6, 5), (2, 15))
#: Scenes Stash has (5 was deleted).
STASH_SCENES = (1, 2, 3, 4, 10, 11)
LAST_OUTAGE_SCENES = (1, 2, 3, 4, 5)
PENDING_SCENES = (10, 11)
#: What ``dlq.db`` holds, by error type.
DLQ_COUNTS = {"PlexServerDown": 7, "PlexNotFound": 1, "PlexTemporaryError": 1}


def secret_pieces(secret: str, size: int = 8) -> set[str]:
    """Every ``size``-character piece of ``secret``."""
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def leaked_secrets(text: str) -> list[str]:
    """The 8-character pieces of any test secret found in ``text``."""
    return sorted(piece for secret in SECRETS for piece in secret_pieces(secret) if piece in text)


@dataclass
class World:
    """One test's data folder and the times of its outages."""

    data_dir: Path
    now: float
    outages: list[tuple[float, float]]

    @property
    def last_outage(self) -> tuple[float, float]:
        return self.outages[-1]


def build_world(root: Path) -> World:
    """Write the data folder described in the module docstring."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    plexsync = PlexSyncData(data_dir)
    plexsync.create_dlq()
    (data_dir / "queue").mkdir()
    now = time.time()
    outages = [(now - days * DAY, now - days * DAY + minutes * 60.0) for days, minutes in OUTAGES]
    plexsync.write_outage_history({"started_at": a, "ended_at": b, "jobs_affected": 2} for a, b in outages)

    def dead_letter(scene: int, failed_at: float, error_type: str = "PlexServerDown", message: str = "boom") -> None:
        job = make_job(scene, "metadata", {"title": f"Scene {scene}"})
        plexsync.add_dead_letter(job, error_type=error_type, error_message=message, retry_count=3, failed_at=failed_at)

    last_start = outages[-1][0]
    for offset, scene in enumerate(LAST_OUTAGE_SCENES):
        dead_letter(scene, last_start + 30.0 * (offset + 1))
    dead_letter(6, last_start + 400.0, "PlexNotFound")
    pending_start, pending_end = outages[-2]
    for offset, scene in enumerate(PENDING_SCENES):
        dead_letter(scene, pending_start + 20.0 * (offset + 1))
    dead_letter(8, now - 5 * 3600.0, "PlexTemporaryError", "Timeout error: read timed out")
    PendingWindows(data_dir).add(pending_start, pending_end)
    return World(data_dir, now, outages)


@dataclass
class Servers:
    plex: PlexTestServer
    stash: StashTestServer


@pytest.fixture(scope="session")
def web_servers() -> Iterator[Servers]:
    with PlexTestServer(token=PLEX_TOKEN) as plex, StashTestServer(scenes=STASH_SCENES, api_key=STASH_API_KEY) as stash:
        yield Servers(plex, stash)


def daemon_env(servers: Servers, **extra: str) -> dict[str, str]:
    """The environment a user would give the daemon: the servers and the secrets as variables."""
    env = {key: value for key, value in os.environ.items()
           if key not in ENVIRONMENT.values() and not key.startswith("PLEXSYNC_RECOVERY_HTTP")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(PLEX_URL=servers.plex.url, PLEX_TOKEN=PLEX_TOKEN, STASH_URL=servers.stash.url,
               STASH_API_KEY=STASH_API_KEY, **extra)
    return env


class WebDaemon:
    """``plexsync-recovery watch --http 127.0.0.1:0`` in a process; ``url`` is read from its log.

    Its first start catches up on nothing (``--catch-up-days 0``): the world's outages are the
    history the page shows as the tests left it, not outages to recover at start.
    """

    def __init__(self, data_dir: Path, env: dict[str, str], *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--data-dir", str(data_dir),
             "--interval", "0.2", "--http", "127.0.0.1:0", "--catch-up-days", "0", *flags],
            env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_until(lambda: self._url() is not None or self.proc.poll() is not None, timeout=DEADLINE):
            self.stop()
            pytest.fail(f"the daemon did not say where its status page is: {self.stderr!r}")
        found = self._url()
        if found is None:
            self.stop()
            pytest.fail(f"the daemon stopped before serving: {self.stderr!r}")
        self.url = found

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def _url(self) -> str | None:
        match = re.search(r"status page at (http://\S+/)", self.stderr)
        return match.group(1) if match else None

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str


def fetch(url: str, method: str = "GET", *, body: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """One request, redirects not followed; header names in lower case."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
    try:
        sent = dict(headers or {})
        if body is not None:
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection.request(method, parts.path or "/", body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())
    finally:
        connection.close()


def settle(url: str) -> None:
    """Wait until the daemon has ticked and retried the pending window (runs_total{completed} 1)."""
    from prometheus_client.parser import text_string_to_metric_families

    def settled() -> bool:
        answer = fetch(url + "metrics")
        for family in text_string_to_metric_families(answer.text):
            if family.name == "plexsync_recovery_pending_windows":
                return family.samples[0].value == 0 and fetch(url + "healthz").status == 200
        return False

    assert wait_until(settled, timeout=DEADLINE, interval=0.1), "the daemon never retried its pending window"


@pytest.fixture(scope="session")
def web_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="session")
def web_daemon(web_world: World, web_servers: Servers) -> Iterator[WebDaemon]:
    """A daemon with actions allowed (the token in the environment), settled; shared by the tests that only read
    (and preview: nothing they do changes what the others read)."""
    daemon = WebDaemon(web_world.data_dir, daemon_env(web_servers, PLEXSYNC_RECOVERY_HTTP_TOKEN=HTTP_TOKEN))
    try:
        settle(daemon.url)
        yield daemon
    finally:
        assert daemon.stop() == 0, daemon.stderr


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def queued_scenes(data_dir: Path) -> list[int]:
    """The scene of every job in PlexSync's queue, one per row (a scene queued twice shows twice)."""
    import sqlite3

    from persistqueue.serializers import pickle as queue_pickle

    conn = sqlite3.connect(data_dir / "queue" / "data.db")
    try:
        rows = conn.execute("SELECT data FROM ack_queue_default ORDER BY _id").fetchall()
    finally:
        conn.close()
    return sorted(queue_pickle.loads(row[0])["scene_id"] for row in rows)

