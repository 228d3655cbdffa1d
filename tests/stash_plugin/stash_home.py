"""A Stash home as users have it, for running the plugin the Stash way.

* Stash's configuration folder (``Dir`` in the plugin input) with ``plugins/`` below it, laid
  out by Stash's package manager: each source in its own sub-folder (``community/``,
  ``stash2plex/``, ``plexsync-recovery/``), each package in a folder named by its id.
* PlexSync (Stash2Plex) installed from its source, with its data folder.
* A stand-in of PythonDepManager in ``community/`` (see ``stand_ins/PythonDepManager``) that
  serves the distributions installed in the test's own Python.
* This plugin installed by a stand-in of Stash's package manager (``stash_packages``) from the
  source index and zip ``stash-plugin build`` wrote.
* A Python that has neither this package nor its dependencies (a venv without pip), run with
  ``PYTHONPATH`` set as Stash sets it for a Python plugin: the folder above the plugin's.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stash_plugin.conftest import PluginRun
from tests.stash_plugin.stash_packages import StashPackageManager

STAND_INS = Path(__file__).resolve().parent / "stand_ins"
PLUGIN_ID = "PlexSyncRecovery"
SOURCE_PATH = "plexsync-recovery"
#: The distributions the plugin needs, by the names its pins use.
DISTRIBUTIONS = ("blinker", "plexapi", "stashapi", "persist-queue")


def served_distributions(names: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, list[str]]:
    """Distribution name -> the installed paths (packages, modules, metadata) of it and what it requires."""
    served = {}
    for name in names:
        paths: list[str] = []
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            key = current.lower().replace("_", "-")
            if key in seen:
                continue
            seen.add(key)
            distribution = importlib.metadata.distribution(current)
            for entry in distribution.files or []:
                top = entry.parts[0]
                if top in ("..", "__pycache__") or top.endswith(".pth"):
                    continue
                path = str(distribution.locate_file(top))
                if path not in paths:
                    paths.append(path)
            for requirement in distribution.requires or []:
                if "extra ==" not in requirement:
                    todo.append(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0))
        served[name.lower()] = paths
    return served


def bare_python(folder: Path, *, pip_stand_in: bool = False, served: dict[str, list[str]] | None = None) -> Path:
    """A Python without this package, its dependencies or pip.

    Args:
        folder: Where the virtual environment goes.
        pip_stand_in: Give it an offline pip (``stand_ins/pip``).
        served: Install these distributions' files into it (a Python that has the dependencies).
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python3"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    if pip_stand_in:
        shutil.copytree(STAND_INS / "pip", site / "pip")
    for paths in (served or {}).values():
        for path in paths:
            if not (site / Path(path).name).exists():
                os.symlink(path, site / Path(path).name)
    return python


@dataclass
class StashHome:
    """One Stash home (see the module docstring)."""

    config_dir: Path
    python: Path
    served: Path
    stash_url_connection: dict[str, Any]
    environment: dict[str, str]

    @property
    def plugins(self) -> Path:
        return self.config_dir / "plugins"

    @property
    def plexsync_folder(self) -> Path:
        return self.plugins / "stash2plex" / "Stash2Plex"

    @property
    def data_dir(self) -> Path:
        return self.plexsync_folder / "data"

    @property
    def dep_manager(self) -> Path:
        return self.plugins / "community" / "PythonDepManager"

    @property
    def folder(self) -> Path:
        """This plugin's folder, as the package manager installs it."""
        return self.plugins / SOURCE_PATH / PLUGIN_ID

    def package_manager(self, index: Path) -> StashPackageManager:
        return StashPackageManager(self.plugins, SOURCE_PATH, index)

    def lay_out(self) -> None:
        """PlexSync from its source (manifest, data folder) and PythonDepManager from the community source."""
        self.data_dir.mkdir(parents=True)
        (self.plexsync_folder / "Stash2Plex.yml").write_text("# requires: PythonDepManager\nname: Stash2Plex\n")
        shutil.copytree(STAND_INS / "PythonDepManager", self.dep_manager)
        shutil.copy(self.served, self.dep_manager / "served.json")

    def dep_manager_calls(self) -> list[list[str]]:
        """Each ``ensure_import`` call's specs, in order."""
        calls = self.dep_manager / "calls.jsonl"
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    def pip_calls(self) -> list[list[str]]:
        """Each call of the pip stand-in's arguments, in order."""
        calls = self.served.with_name("pip_calls.jsonl")
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    def run(self, *, mode: str | None = None, hook: str | None = None, python: Path | None = None,
            folder: Path | None = None) -> PluginRun:
        """Run the plugin's launcher as Stash runs it: its Python, ``PYTHONPATH``, the input on stdin."""
        plugin_dir = folder or self.folder
        args: dict[str, Any] = {"mode": mode} if mode is not None else {}
        if hook is not None:
            args["hookContext"] = {"id": 3, "type": hook, "input": {"id": "3", "title": "x"}, "inputFields": ["title"]}
        connection = {**self.stash_url_connection, "Dir": str(self.config_dir), "PluginDir": str(plugin_dir)}
        environment = {**self.environment, "PYTHONPATH": str(plugin_dir.parent)}
        done = subprocess.run(
            [str(python or self.python), str(plugin_dir / "plexsync_recovery_launcher.py")],
            input=json.dumps({"server_connection": connection, "args": args}),
            env=environment, cwd=self.config_dir, capture_output=True, text=True, timeout=60,
        )
        return PluginRun(done.returncode, done.stdout, done.stderr)


def stash_environment() -> dict[str, str]:
    """Stash's environment: none of this project's variables, nothing importable from this worktree."""
    dropped = ("PYTHONPATH", "STASH_PLUGIN_DATA", "PLEX_TOKEN", "PLEX_URL", "STASH_URL", "STASH_API_KEY",
               "PYTHONHOME", "VIRTUAL_ENV")
    return {key: value for key, value in os.environ.items() if key not in dropped}
