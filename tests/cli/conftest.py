"""Helpers for the command-line tests: run ``python -m plexsync_recovery_plugin`` as a user would."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from plexsync_recovery_plugin.cli.settings import ENVIRONMENT
from plexsync_recovery_plugin.sqlite_uri import sqlite_uri
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]

RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The environment without any of the CLI's variables, with the repo importable."""
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT.values()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> RunCli:
    """Run the CLI in a subprocess; ``env=`` adds variables; returns the CompletedProcess (text)."""

    def run(*args: Any, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "plexsync_recovery_plugin", *map(str, args)],
            env={**cli_env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def data_dir(data_dir: Path) -> Path:
    """A PlexSync data directory before its first dead letter: ``queue/`` exists, ``dlq.db`` not yet.

    (The commands refuse a directory with neither: it is not PlexSync's.)
    """
    (data_dir / "queue").mkdir()
    return data_dir


@pytest.fixture
def plex_server():
    with PlexTestServer(token="plex-cli-token") as server:
        yield server


@pytest.fixture
def stash_server():
    with StashTestServer(scenes=[1, 2, 3]) as server:
        yield server


def server_flags(plex: PlexTestServer, stash: StashTestServer) -> list[str]:
    """The flags that point the CLI at the two test servers."""
    return ["--plex-url", plex.url, "--plex-token", plex.token, "--stash-url", stash.url]


def _error_message(line: str) -> str | None:
    """The message of an error line: ``plexsync-recovery: error: ...``, or ``{"error": ...}`` (``--json``)."""
    if line.startswith("plexsync-recovery: error: "):
        return line
    if line.startswith("{"):
        try:
            return "plexsync-recovery: error: " + json.loads(line)["error"]
        except (ValueError, KeyError, TypeError):
            return None
    return None


def assert_one_error_line(stderr: str, *fragments: str) -> str:
    """The stderr holds exactly one error line (text, or a JSON object under ``--json``), with each fragment,
    and no traceback; returns it as text."""
    assert "Traceback" not in stderr
    errors = [message for message in map(_error_message, stderr.splitlines()) if message is not None]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def table_rows(db_file: Path, table: str) -> list[tuple]:
    """Every row of ``table`` (empty when the file or the table does not exist)."""
    if not db_file.exists():
        return []
    conn = sqlite3.connect(sqlite_uri(db_file, "ro"), uri=True)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        conn.close()


class Daemon:
    """``plexsync-recovery watch`` in a subprocess, its stderr collected line by line by a thread."""

    def __init__(self, cli_env, data_dir, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--data-dir", str(data_dir),
             "--interval", "0.2", *map(str, flags)],
            env=cli_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker, timeout=5.0):
        if not wait_until(lambda: marker in self.stderr or self.proc.poll() is not None, timeout=timeout):
            self.kill()
        if marker not in self.stderr:
            self.kill()
            pytest.fail(f"no {marker!r} from the daemon; it said: {self.stderr!r}")

    def stop(self, signum, timeout=5.0) -> int:
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the daemon did not stop within 5 s")
        self._reader.join(timeout)
        self.proc.stderr.close()
        return code

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        self.proc.stderr.close()
