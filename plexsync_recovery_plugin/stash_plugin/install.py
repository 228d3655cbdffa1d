"""Writing the plugin (manifest and launcher) into Stash's plugins folder.

The files go to ``<plugins>/PlexSyncRecovery/``; Stash names the plugin after the manifest
(``PlexSyncRecovery.yml``). Installing again changes nothing when the files are current, and
replaces files an earlier install wrote (they carry :data:`OWN_MARKER`); a file there that
it did not write is never overwritten.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .protocol import PLUGIN_ID

__all__ = ["FILE_NAMES", "ForeignFileError", "OWN_MARKER", "PlannedFile", "install", "plan_install"]

#: The files of the plugin, shipped in this package and written under these names.
FILE_NAMES = (f"{PLUGIN_ID}.yml", "plexsync_recovery_launcher.py")
#: The line every file the installer writes carries.
OWN_MARKER = "# Written by plexsync-recovery stash-plugin install"


class ForeignFileError(Exception):
    """A file the installer would write exists and was not written by it."""


@dataclass(frozen=True)
class PlannedFile:
    """One file of the plugin and what installing does to it.

    Attributes:
        path: Where it goes.
        content: What it holds.
        action: ``create``, ``update`` (an earlier install's file), ``unchanged`` or
            ``foreign`` (someone else's file: never overwritten).
    """

    path: Path
    content: str
    action: str


def _shipped(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _action(path: Path, content: str) -> str:
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "create"
    except (UnicodeDecodeError, IsADirectoryError):
        return "foreign"
    if current == content:
        return "unchanged"
    return "update" if OWN_MARKER in current else "foreign"


def plan_install(plugins_dir: str | Path) -> list[PlannedFile]:
    """Say what installing into ``plugins_dir`` would do to each file; change nothing."""
    folder = Path(plugins_dir) / PLUGIN_ID
    planned = []
    for name in FILE_NAMES:
        content = _shipped(name)
        planned.append(PlannedFile(folder / name, content, _action(folder / name, content)))
    return planned


def _write_atomically(path: Path, content: str) -> None:
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def install(plugins_dir: str | Path) -> list[PlannedFile]:
    """Write the plugin into ``plugins_dir``; return what was done to each file.

    Raises:
        FileNotFoundError: ``plugins_dir`` is not an existing folder.
        ForeignFileError: A file to write exists and is not an earlier install's (nothing is written).
    """
    root = Path(plugins_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Stash's plugins folder {str(root)!r} does not exist")
    planned = plan_install(root)
    foreign = [item.path for item in planned if item.action == "foreign"]
    if foreign:
        names = ", ".join(repr(str(path)) for path in foreign)
        raise ForeignFileError(f"{names} exists and was not written by this installer: move it away first")
    (root / PLUGIN_ID).mkdir(exist_ok=True)
    for item in planned:
        if item.action in ("create", "update"):
            _write_atomically(item.path, item.content)
    return planned
