"""The door matrix's kit: a PlexSync folder after months of use, loopback Plex and Stash, one driver per door.

Every door is driven the way its user drives it and answers with a :class:`DoorOutcome` read
from what it left behind (PlexSync's queue rows, the pending windows) and what it reported
(exit code, ``error`` field, log lines):

* ``library``: a ``RecoveryPlugin`` connected to ``outage_ended``, sent by the in-process
  follower of PlexSync's ``outage_history.json``;
* ``cli``: ``python -m plexsync_recovery_plugin recover --last-outage`` in a process;
* ``watch``: the daemon in a process, following ``outage_history.json``;
* ``task`` / ``hook``: the installed launcher run as Stash runs it, JSON on stdin, the
  settings read from the loopback Stash's ``configuration { plugins }``.

A test builds the outage (``world.outage``, ``world.add_entry``) after ``door.start(world)``
(the hook's first check and the follower's first run take the history as they find it), then
calls ``door.recover_outage(world)``. The servers are shared by the session; each test gets
its own copy of the data folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from plexsync_recovery_plugin.cli.settings import ENVIRONMENT
from plexsync_recovery_plugin.dev.plex_server import _PlexRequestHandler
from plexsync_recovery_plugin.dev.plexsync_data import PlexSyncData
from plexsync_recovery_plugin.dev.stash_server import StashRequestHandler
from plexsync_recovery_plugin.stash_plugin.install import install
from plexsync_recovery_plugin.state import PendingWindows
from plexsync_recovery_plugin.sync_queue.operations import make_job
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import Daemon
from tests.conftest import WINDOW_START, wait_until
from tests.stash_plugin.conftest import LAUNCHER, PluginRun

REPO = Path(__file__).resolve().parents[2]

#: Secrets, random so that no 8-character piece of them occurs in ordinary text.
PLEX_TOKEN = "Zq8vR2mK7xT4pL9wN3bY"
STASH_API_KEY = "Hn4T8wQ2vZ6yB1cR5mXe"
STASH_COOKIE = "MTc3MTE4MzA2OXxQd1ZxN2JSMnpL"
URL_PASSWORD = "pW7hJ2kQ9sLdV4"
WRONG_PLEX_TOKEN = "x9Dq4RtV7bKm2YhW5nLc"
WRONG_STASH_KEY = "J3fTz8QpW6vNc1Rk5XsH"
WRONG_COOKIE = "TWpBNE1qTTBOemd4fGtIdzVy"
SECRETS = (PLEX_TOKEN, STASH_API_KEY, STASH_COOKIE, URL_PASSWORD, WRONG_PLEX_TOKEN, WRONG_STASH_KEY, WRONG_COOKIE)

#: When PlexSync's months of use began: every old row and outage is dated after this, before the scenarios'.
MONTHS_AGO = WINDOW_START - 120 * 86400.0
OLD_DEAD_LETTERS = 3000
OLD_ACKED_JOBS = 3000

#: The overall request deadline scenario h gives each door (the library: the clients' ``deadline=``; the CLI
#: and the daemon: a flag; the Stash plugin: its own setting), and how long the trickling Stash takes to
#: answer a scene query: one byte every TRICKLE_GAP, TRICKLE_BYTES of them.
DEADLINE = 0.8
CLI_DEADLINE_FLAGS = ("--request-timeout", str(DEADLINE))
STASH_DEADLINE_SETTING = "request_timeout"
TRICKLE_GAP = 0.25
TRICKLE_BYTES = 10
#: Longest any door may take for one call before the harness gives up on it.
BOUND = 20.0


def secret_pieces(secret: str, size: int = 8) -> set[str]:
    """Every ``size``-character piece of ``secret`` (the whole secret if it is shorter)."""
    return {secret[i:i + size] for i in range(max(1, len(secret) - size + 1))}


def leaked_secrets(text: str) -> list[str]:
    """The 8-character pieces of any test secret found in ``text``."""
    return sorted(piece for secret in SECRETS for piece in secret_pieces(secret) if piece in text)


# -- the loopback servers -------------------------------------------------------------------------


class _TricklingHandler(StashRequestHandler):
    """Stash's handler, but a scene query's answer trickles out one byte at a time while trickling is on."""

    def _read_body(self) -> bytes | None:
        body = super()._read_body()
        self.request_body = body or b""
        return body

    def respond(self, status: int, body: bytes, content_type: str, headers: Any = None) -> None:
        stash: TricklingStash = self.service
        if not (stash.trickling and b"findScene" in getattr(self, "request_body", b"")):
            super().respond(status, body, content_type, headers)
            return
        stash._count_request()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(TRICKLE_BYTES + len(body)))
        self.end_headers()
        try:
            for _ in range(TRICKLE_BYTES):  # JSON allows leading white space: the answer stays valid
                if not stash._pause(TRICKLE_GAP):
                    self.drop_connection()
                    return
                self.wfile.write(b" ")
            self.wfile.write(body)
        except OSError:  # the client gave up, as it should
            self.drop_connection()


class TricklingStash(StashTestServer):
    """The loopback Stash, able to answer scene queries one byte every ``TRICKLE_GAP`` seconds."""

    handler_class = _TricklingHandler
    trickling = False


class _EchoingPlexHandler(_PlexRequestHandler):
    """Plex's handler whose 401 page echoes the request, token included, as some Plex error pages do."""

    def respond(self, status: int, body: bytes, content_type: str, headers: Any = None) -> None:
        if status == 401:
            token = self.headers.get("X-Plex-Token", "")
            body = (f"<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1>"
                    f"<p>{self.command} {self.path} X-Plex-Token={token}</p></body></html>").encode()
        super().respond(status, body, content_type, headers)


class EchoingPlex(PlexTestServer):
    """The loopback Plex whose 401 page echoes the token it was sent."""

    handler_class = _EchoingPlexHandler


@dataclass
class Servers:
    """The session's loopback servers: Plex, two that reject every token (401; one echoes it), Stash."""

    plex: PlexTestServer
    revoked_plex: PlexTestServer
    echoing_plex: EchoingPlex
    stash: TricklingStash


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with PlexTestServer(token=PLEX_TOKEN) as plex, PlexTestServer(token=PLEX_TOKEN, initial_mode="revoked") as revoked, \
            EchoingPlex(token=PLEX_TOKEN, initial_mode="revoked") as echoing, \
            TricklingStash(api_key=STASH_API_KEY, session_cookie=STASH_COOKIE) as stash:
        yield Servers(plex, revoked, echoing, stash)


# -- the data folder ------------------------------------------------------------------------------


def _old_job(scene_id: int, at: float) -> dict[str, Any]:
    return make_job(scene_id, "metadata", {"title": f"Scene {scene_id}", "studio": "Old Studio"}, now=at)


def _build_months_of_use(root: Path) -> None:
    """Stash's folder with PlexSync installed, used for months, and this plugin installed beside it.

    ``dlq.db`` holds thousands of old dead letters of every type, the queue thousands of
    acked jobs (a hundred through a real ``SQLiteAckQueue``, the rest in its exact row
    format), ``outage_history.json`` a dozen closed outages; all dated long before any
    scenario's outage.
    """
    from persistqueue.serializers import pickle as queue_pickle

    plugins = root / "plugins"
    (plugins / "Stash2Plex" / "data").mkdir(parents=True)
    (plugins / "Stash2Plex" / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    install(plugins)
    plexsync = PlexSyncData(plugins / "Stash2Plex" / "data")
    types = ("PlexServerDown", "PlexTemporaryError", "PlexNotFound", "PlexPermanentError")
    plexsync.insert_dead_letter_rows(
        plexsync.dead_letter_row(_old_job(i, MONTHS_AGO), error_type=types[i % 4], error_message="Connection error: old",
                                 failed_at=MONTHS_AGO + i * 3000.0)
        for i in range(1, OLD_DEAD_LETTERS + 1)
    )
    plexsync.queue_jobs([_old_job(i, MONTHS_AGO) for i in range(1, 101)], status="acked", timestamp=MONTHS_AGO)
    conn = sqlite3.connect(plexsync.data_dir / "queue" / "data.db")
    with conn:
        conn.executemany(
            "INSERT INTO ack_queue_default (data, timestamp, status) VALUES (?, ?, 5)",
            ((queue_pickle.dumps(_old_job(i, MONTHS_AGO + i * 3000.0)), MONTHS_AGO + i * 3000.0)
             for i in range(101, OLD_ACKED_JOBS + 1)),
        )
    conn.close()
    plexsync.write_outage_history(
        {"started_at": MONTHS_AGO + k * 600_000.0, "ended_at": MONTHS_AGO + k * 600_000.0 + 900.0, "jobs_affected": 4}
        for k in range(12)
    )


@pytest.fixture(scope="session")
def months_of_use(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template of Stash's folder after months of PlexSync; each test copies it."""
    root = tmp_path_factory.mktemp("template") / "stash"
    _build_months_of_use(root)
    return root


@dataclass
class World:
    """One test's Stash folder (PlexSync's data inside), the servers, and how the doors reach them.

    Attributes:
        root: Stash's configuration folder (``plugins/`` inside).
        servers: The session's loopback servers.
        plex_url: The Plex URL every door is given.
        plex_token: The Plex token every door is given.
        stash_url: Stash's GraphQL URL (the CLI, the daemon and the library; Stash tells its plugins itself).
        stash_api_key: The Stash API key (None: none given).
        stash_cookie: The session cookie Stash gives its plugin processes.
        deadline: An overall request deadline to give each door, or None for its default.
    """

    root: Path
    servers: Servers
    plex_url: str
    plex_token: str = PLEX_TOKEN
    stash_url: str = ""
    stash_api_key: str | None = STASH_API_KEY
    stash_cookie: str = STASH_COOKIE
    deadline: float | None = None
    _own_rows: set[int] = field(default_factory=set)
    _first_row: int = 0

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def data_dir(self) -> Path:
        return self.plugins_dir / "Stash2Plex" / "data"

    @property
    def plexsync(self) -> PlexSyncData:
        return PlexSyncData(self.data_dir)

    def outage(self, *records: tuple[float, float | None]) -> None:
        """Append ``(started_at, ended_at or None)`` records to PlexSync's history, as its worker writes them."""
        path = self.data_dir / "outage_history.json"
        history = json.loads(path.read_text())
        history += [{"started_at": start, "ended_at": end, "jobs_affected": 1} for start, end in records]
        self.plexsync.write_outage_history(history)

    def add_entry(self, scene_id: int, failed_at: float, *, error_type: str = "PlexServerDown",
                  error_message: str = "Plex server unreachable", data: dict[str, Any] | None = None,
                  job_data: bytes | None = None, scene_column: Any = "job") -> int:
        """Dead-letter a job for ``scene_id`` as PlexSync does (the scene exists in Stash); return its DLQ id.

        ``job_data`` replaces the pickled job; ``scene_column`` is the ``scene_id`` column's value
        (``"job"``: the job's scene, as PlexSync writes it; None: NULL).
        """
        self.servers.stash.add_scenes([scene_id])
        job = make_job(scene_id, "metadata", data if data is not None else {"title": f"Scene {scene_id}"},
                       now=failed_at - 30)
        raw = {"job_data": job_data} if job_data is not None else {}
        raw |= {"scene_id": scene_column} if scene_column != "job" else {}
        return self.plexsync.add_dead_letter(job, error_type=error_type, error_message=error_message,
                                             failed_at=failed_at, **raw)

    def queue_acked(self, job: dict[str, Any], enqueued_at: float) -> None:
        """Put a job on PlexSync's queue and ack it, enqueued at ``enqueued_at`` (not a re-queued job)."""
        self._own_rows.update(self.plexsync.queue_jobs([job], status="acked", timestamp=enqueued_at))

    def last_row(self) -> int:
        conn = sqlite3.connect(self.data_dir / "queue" / "data.db")
        try:
            return int(conn.execute("SELECT coalesce(max(_id), 0) FROM ack_queue_default").fetchone()[0])
        finally:
            conn.close()

    def jobs_after(self, row_id: int) -> list[dict[str, Any]]:
        """The jobs put on PlexSync's queue after row ``row_id`` by a door, in queue order (the test's own excluded)."""
        conn = sqlite3.connect(self.data_dir / "queue" / "data.db")
        try:
            rows = conn.execute("SELECT _id, data FROM ack_queue_default WHERE _id > ? ORDER BY _id", (row_id,))
            return [pickle.loads(data) for rid, data in rows if rid not in self._own_rows]
        finally:
            conn.close()

    def requeued(self) -> list[dict[str, Any]]:
        """Every job a door put on the queue since this world was made."""
        return self.jobs_after(self._first_row)

    def pending(self) -> list[tuple[float, float]]:
        return PendingWindows(self.data_dir).windows()

    def lock_is_free(self) -> bool:
        """Whether ``recovery.lock`` can be taken now (nobody holds it)."""
        path = self.data_dir / "recovery.lock"
        if not path.exists():
            return True
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def configure_stash(self) -> None:
        """Put the Plex settings (and the deadline) where the Stash plugin reads them: Stash's plugin settings."""
        stash = self.servers.stash
        stash.set_plugin_settings("Stash2Plex", {"plex_url": self.plex_url, "plex_token": self.plex_token,
                                                 "enabled": True})
        own = {} if self.deadline is None else {STASH_DEADLINE_SETTING: self.deadline}
        stash.set_plugin_settings("PlexSyncRecovery", own)


@pytest.fixture
def world(months_of_use: Path, servers: Servers, tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "stash"
    shutil.copytree(months_of_use, root)
    made = World(root, servers, plex_url=servers.plex.url, stash_url=servers.stash.url)
    made._first_row = made.last_row()
    yield made
    servers.stash.trickling = False


# -- the doors ------------------------------------------------------------------------------------


@dataclass
class DoorOutcome:
    """What one call through a door did and said.

    Attributes:
        requeued: The jobs this call put on PlexSync's queue, in queue order.
        pending: The windows pending after the call.
        error: Whether the door reported an error (non-zero exit, ``error`` set, an error line, ``Run.error``).
        errors: The lines or messages it reported errors with.
        text: Everything the door printed or logged during the call.
        code: The process's exit code (None: no process, or still running).
        seconds: How long the call took.
    """

    requeued: list[dict[str, Any]]
    pending: list[tuple[float, float]]
    error: bool
    errors: list[str]
    text: str
    code: int | None
    seconds: float

    @property
    def scenes(self) -> list[int]:
        return sorted(job["scene_id"] for job in self.requeued)

    @property
    def shown(self) -> str:
        """``text`` without DEBUG records (``-v`` may show a traceback there; a user never sees one elsewhere)."""
        return without_debug(self.text)


_RECORD_START = re.compile(r"^(?:\d{4}-\d\d-\d\dT\S+ +(?P<long>[A-Z]+) |(?P<plain>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                           r"|\x01(?P<stash>[a-z])\x02)")


def without_debug(text: str) -> str:
    """``text`` without its DEBUG log records (their continuation lines, a traceback say, included)."""
    kept, debug = [], False
    for line in text.splitlines():
        start = _RECORD_START.match(line)
        if start is not None:
            level = start.group("long") or start.group("plain") or start.group("stash")
            debug = level in ("DEBUG", "d")
        if not debug:
            kept.append(line)
    return "\n".join(kept)


@dataclass
class _Said:
    error: bool
    errors: list[str]
    text: str
    code: int | None = None


class Door:
    """One way into the plugin. ``start`` before the scenario's outage, ``recover_outage`` after it."""

    name = ""
    #: Words one of which a configuration error about the Plex token / Stash credentials must name.
    token_setting: tuple[str, ...] = ()
    stash_setting: tuple[str, ...] = ()

    def start(self, world: World) -> None:
        """Take the data folder as the door first finds it (old outages are not recovered)."""

    def recover_outage(self, world: World) -> DoorOutcome:
        """Let the door recover what ended since it started (or since its last call)."""
        before, began = world.last_row(), time.monotonic()
        said = self._recover(world)
        return DoorOutcome(world.jobs_after(before), world.pending(), said.error, said.errors, said.text, said.code,
                           time.monotonic() - began)

    def _recover(self, world: World) -> _Said:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the door started."""


def _process_env() -> dict[str, str]:
    """The environment without the plugin's variables, this worktree importable, no subscribers loaded."""
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT.values()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PLEXSYNC_RECOVERY_NO_SUBSCRIBERS"] = "1"
    return env


def _cli_env(world: World) -> dict[str, str]:
    env = _process_env() | {"PLEX_TOKEN": world.plex_token}
    if world.stash_api_key is not None:
        env["STASH_API_KEY"] = world.stash_api_key
    return env


def _cli_flags(world: World) -> list[str]:
    flags = ["--data-dir", str(world.data_dir), "--plex-url", world.plex_url, "--stash-url", world.stash_url]
    return flags + (list(CLI_DEADLINE_FLAGS) if world.deadline is not None else [])


_ERROR_LINE = re.compile(r"^(plexsync-recovery: error:|\S+ (ERROR|CRITICAL) |(ERROR|CRITICAL) )")


class LibraryDoor(Door):
    """``RecoveryPlugin`` connected to ``outage_ended``, which the in-process history follower sends."""

    name = "library"

    def start(self, world: World) -> None:
        from plexsync_recovery_plugin import RecoveryPlugin
        from plexsync_recovery_plugin.plex.health import PlexConnection
        from plexsync_recovery_plugin.stash.connection import StashConnection
        from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue
        from plexsync_recovery_plugin.worker.history_follower import HistoryFollower

        deadline: dict[str, Any] = {} if world.deadline is None else {"deadline": world.deadline}
        self.stash = StashConnection(world.stash_url, world.stash_api_key, timeout=10.0, **deadline)
        self.plex = PlexConnection(world.plex_url, world.plex_token, timeout=10.0, **deadline)
        self.plugin = RecoveryPlugin(DeadLetterQueue(world.data_dir), None, self.stash, self.plex, world.data_dir)
        self.plugin.connect()
        self.follower = HistoryFollower(world.data_dir)
        self.follower.start()

    def _recover(self, world: World) -> _Said:
        from plexsync_recovery_plugin.signals import recovery_completed, recovery_failed

        lines: list[str] = []
        errors: list[str] = []
        handler = _ListHandler(lines)
        package = logging.getLogger("plexsync_recovery_plugin")
        package.addHandler(handler)
        level, package.level = package.level, logging.DEBUG

        def completed(sender: Any, *, result: Any, **kwargs: Any) -> None:
            lines.append(f"recovery_completed: {result}")
            if result.failed:
                errors.append(str(result))

        def failed(sender: Any, *, error: BaseException, **kwargs: Any) -> None:
            lines.append(f"recovery_failed: {error}")
            errors.append(str(error))

        try:
            with recovery_completed.connected_to(completed), recovery_failed.connected_to(failed):
                self.follower.poll()
        finally:
            package.removeHandler(handler)
            package.level = level
        return _Said(bool(errors), errors, "\n".join(lines))

    def close(self) -> None:
        if hasattr(self, "plugin"):
            self.plugin.disconnect()
            self.plugin.close()
            self.plex.close()
            self.stash.close()


class _ListHandler(logging.Handler):
    """Appends each record, formatted with its level (and any traceback), to a list."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class CliDoor(Door):
    """``python -m plexsync_recovery_plugin recover --last-outage -v`` in a process, as a user runs it."""

    name = "cli"
    token_setting = ("PLEX_TOKEN", "--plex-token")
    stash_setting = ("STASH_API_KEY", "--stash-api-key")

    def _recover(self, world: World) -> _Said:
        done = subprocess.run(
            [sys.executable, "-m", "plexsync_recovery_plugin", "recover", "--last-outage", "-v", *_cli_flags(world)],
            env=_cli_env(world), cwd=REPO, capture_output=True, text=True, timeout=BOUND,
        )
        text = done.stdout + done.stderr
        errors = [line for line in text.splitlines() if _ERROR_LINE.match(line)]
        return _Said(done.returncode != 0, errors, text, done.returncode)


class WatchDoor(Door):
    """``plexsync-recovery watch -v --interval 0.1`` in a process, following PlexSync's outage history."""

    name = "watch"
    token_setting = ("PLEX_TOKEN", "--plex-token")
    stash_setting = ("STASH_API_KEY", "--stash-api-key")
    daemon: Daemon | None = None

    def start(self, world: World) -> None:
        self.daemon = Daemon(_cli_env(world), world.data_dir, "-v", "--interval", "0.1", "--probe-timeout", "2",
                             *_cli_flags(world)[2:])
        self._wait_for_probes(1)

    def _probes(self) -> int:
        assert self.daemon is not None
        return sum(" probe at " in line for line in list(self.daemon.lines))

    def _wait_for_probes(self, count: int) -> None:
        """Wait until ``count`` more probes are logged: the tick before the last has then done all its work."""
        assert self.daemon is not None
        daemon, target = self.daemon, self._probes() + count
        if not wait_until(lambda: self._probes() >= target or daemon.proc.poll() is not None, timeout=BOUND):
            pytest.fail(f"the daemon made no {count} probes in {BOUND} s; it said: {daemon.stderr!r}")

    def _recover(self, world: World) -> _Said:
        assert self.daemon is not None
        if self.daemon.proc.poll() is None:
            self._wait_for_probes(2)  # the first tick after the change follows the history; the second proves it ended
        text = self.daemon.stderr  # the whole log: a state change may have been reported at start
        errors = [line for line in text.splitlines() if _ERROR_LINE.match(line)]
        code = self.daemon.proc.poll()
        return _Said(bool(errors) or code is not None, errors, text, code)

    def close(self) -> None:
        if self.daemon is not None and self.daemon.proc.poll() is None:
            self.daemon.stop(signal.SIGTERM)
        elif self.daemon is not None:
            self.daemon.kill()


class _StashPluginDoor(Door):
    """The installed launcher run as Stash runs it: Stash's JSON on stdin, the answer on stdout."""

    stash_setting = ("session",)
    token_setting = ("plex_token",)

    def _run(self, world: World, args: dict[str, Any]) -> PluginRun:
        world.configure_stash()
        connection = world.servers.stash.plugin_connection(str(world.plugins_dir / "PlexSyncRecovery"), str(world.root))
        connection["SessionCookie"]["Value"] = world.stash_cookie
        done = subprocess.run(
            [sys.executable, str(world.plugins_dir / "PlexSyncRecovery" / LAUNCHER)],
            input=json.dumps({"server_connection": connection, "args": args}),
            env=_process_env(), cwd=world.root, capture_output=True, text=True, timeout=BOUND,
        )
        return PluginRun(done.returncode, done.stdout, done.stderr)


class TaskDoor(_StashPluginDoor):
    """Stash's task "Recover last outage"."""

    name = "task"

    def _recover(self, world: World) -> _Said:
        run = self._run(world, {"mode": "recover_last_outage"})
        error = run.answer.get("error")
        return _Said(error is not None, [error] if error is not None else [], run.stdout + run.stderr, run.code)


class HookDoor(_StashPluginDoor):
    """Stash's hook on a scene update; its first call takes the history as its baseline."""

    name = "hook"
    _HOOK = {"hookContext": {"id": 3, "type": "Scene.Update.Post", "input": {"id": "3", "title": "x"},
                             "inputFields": ["title"]}}

    def start(self, world: World) -> None:
        first = self._run(world, self._HOOK)
        assert first.code == 0 and first.answer["error"] is None, first.stderr

    def _recover(self, world: World) -> _Said:
        run = self._run(world, self._HOOK)
        errors = run.texts("e")
        return _Said(bool(errors) or run.code != 0 or run.answer.get("error") is not None, errors,
                     run.stdout + run.stderr, run.code)


DOORS: dict[str, type[Door]] = {door.name: door for door in (LibraryDoor, CliDoor, WatchDoor, TaskDoor, HookDoor)}


@pytest.fixture
def door(request: pytest.FixtureRequest) -> Iterator[Door]:
    """The door named by the test's parameter; whatever it started is stopped afterwards."""
    made = DOORS[request.param]()
    try:
        yield made
    finally:
        made.close()
