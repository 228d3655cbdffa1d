"""Run the Stash plugin exactly as Stash does: its launcher in a subprocess, Stash's JSON on stdin.

The plugins folder is laid out as on a real install: PlexSync at ``<plugins>/Stash2Plex``
(manifest and ``data/``), this plugin written by the installer at ``<plugins>/PlexSyncRecovery``.
The loopback Stash holds PlexSync's settings and lets in only the plugin's session cookie.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from plexsync_recovery_plugin.stash_plugin.install import install
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.conftest import WINDOW_END, WINDOW_START

REPO = Path(__file__).resolve().parents[2]
PLEX_TOKEN = "plex-token-7f3a9c1e5b"
COOKIE = "MTc3MTE4MzA2OXxzZXNzaW9uLWNvb2tpZQ=="
LAUNCHER = "plexsync_recovery_launcher.py"


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This plugin written once by the installer, its code compiled (each test copies it, modification times kept)."""
    root = tmp_path_factory.mktemp("installed")
    install(root)
    compileall.compile_dir(str(root / "PlexSyncRecovery"), quiet=1)
    return root / "PlexSyncRecovery"


@pytest.fixture
def plugins_dir(tmp_path: Path, installed_plugin: Path) -> Path:
    """Stash's plugins folder with PlexSync installed and this plugin written by the installer."""
    root = tmp_path / "stash" / "plugins"
    (root / "Stash2Plex" / "data").mkdir(parents=True)
    (root / "Stash2Plex" / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    shutil.copytree(installed_plugin, root / "PlexSyncRecovery")
    return root


@pytest.fixture
def data_dir(plugins_dir: Path) -> Path:
    """PlexSync's data folder, where PlexSync puts it (overrides the suite's ``data_dir``)."""
    return plugins_dir / "Stash2Plex" / "data"


@pytest.fixture
def plex_server():
    with PlexTestServer(token=PLEX_TOKEN) as server:
        yield server


@pytest.fixture
def stash_server(plex_server):
    settings = {"Stash2Plex": {"plex_url": plex_server.url, "plex_token": PLEX_TOKEN, "enabled": True}}
    with StashTestServer(scenes=range(1, 6), session_cookie=COOKIE, plugin_settings=settings) as server:
        yield server


@dataclass
class PluginRun:
    """What one plugin process did."""

    code: int
    stdout: str
    stderr: str

    @property
    def answer(self) -> dict[str, Any]:
        """The JSON object on stdout."""
        return json.loads(self.stdout)

    @property
    def log(self) -> list[tuple[str, str]]:
        """Stash log lines as ``(level letter, text)``."""
        lines = []
        for line in self.stderr.splitlines():
            if line.startswith("\x01") and line[2:3] == "\x02":
                lines.append((line[1], line[3:]))
        return lines

    def texts(self, level: str | None = None) -> list[str]:
        """The log texts, of one level if given (``p`` is progress)."""
        return [text for letter, text in self.log if level is None or letter == level]

    def non_protocol_lines(self) -> list[str]:
        """Stderr lines that are not Stash log lines (a traceback would show up here)."""
        return [line for line in self.stderr.splitlines() if not line.startswith("\x01")]


RunPlugin = Callable[..., PluginRun]


def plugin_input(stash: StashTestServer, plugins_dir: Path, *, mode: str | None = None,
                 hook: str | None = None) -> dict[str, Any]:
    """The JSON Stash writes to the plugin's stdin for a task (``mode``) or a hook."""
    args: dict[str, Any] = {}
    if mode is not None:
        args["mode"] = mode
    if hook is not None:
        args["hookContext"] = {"id": 3, "type": hook, "input": {"id": "3", "title": "x"}, "inputFields": ["title"]}
    connection = stash.plugin_connection(str(plugins_dir / "PlexSyncRecovery"), str(plugins_dir.parent))
    return {"server_connection": connection, "args": args}


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Stash's environment: no data-dir variable, the package importable from this worktree."""
    env = {key: value for key, value in os.environ.items() if key not in ("STASH_PLUGIN_DATA", "PLEX_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def run_plugin(plugins_dir: Path, stash_server: StashTestServer, plugin_env: dict[str, str]) -> RunPlugin:
    """Run the installed launcher as Stash does; ``mode=`` for a task, ``hook=`` for a hook."""

    def run(*, mode: str | None = None, hook: str | None = None, python_flags: tuple[str, ...] = (),
            payload: Any = None) -> PluginRun:
        data = payload if payload is not None else plugin_input(stash_server, plugins_dir, mode=mode, hook=hook)
        done = subprocess.run(
            [sys.executable, *python_flags, str(plugins_dir / "PlexSyncRecovery" / LAUNCHER)],
            input=data if isinstance(data, str) else json.dumps(data),
            env=plugin_env,
            cwd=plugins_dir.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return PluginRun(done.returncode, done.stdout, done.stderr)

    return run


def write_history(data_dir: Path, *records: tuple[float, float | None]) -> None:
    """Write PlexSync's outage history: ``(started_at, ended_at or None)`` records, oldest first."""
    history = [
        {
            "started_at": start,
            "ended_at": end,
            "duration": None if end is None else end - start,
            "jobs_affected": 0,
        }
        for start, end in records
    ]
    (data_dir / "outage_history.json").write_text(json.dumps(history, indent=2))


OUTAGE = (WINDOW_START, WINDOW_END)
