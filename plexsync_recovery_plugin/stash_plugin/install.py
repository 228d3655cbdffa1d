"""The Stash plugin's files: in Stash's plugins folder (install, uninstall) and as a source index with its zip (build).

One set of files is the plugin, whichever way it arrives: the manifest ``PlexSyncRecovery.yml``
(Stash names the plugin after it; its first line ``# requires: PythonDepManager``), the
launcher Stash runs, and this package's own source (``plexsync_recovery_plugin/``, Python
files only: Stash loads every ``.yml`` under its plugins folder as a plugin, so the package's
copy of the manifest stays out). No third-party code: the launcher gets the dependencies
(see ``plexsync_recovery_launcher``).

* ``build`` writes ``PlexSyncRecovery.zip`` (those files at its root, as Stash's package manager
  unpacks them into ``<plugins>/<source path>/PlexSyncRecovery/``) and ``index.yml``, the source
  index Stash reads (id, name, metadata.description, version, date, path, sha256, requires).
  Entries are sorted and dated with the index's date, so the same source and date give the
  same bytes.
* ``install`` writes the same files into a plugins folder: where an earlier copy of this plugin
  is (also in a package-manager sub-folder), else ``<plugins>/PlexSyncRecovery/``. It replaces
  its own files, removes what an older version had in its package folder, and never
  overwrites a manifest or launcher it did not write (they carry :data:`OWN_MARKER`).
* ``uninstall`` removes only the plugin's files: manifest, launcher, package folder, the
  launcher's ``py_dependencies/``, and Stash's ``manifest`` record when it names this plugin.
  Anything else is left, and said. PlexSync's folder and data are never touched.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import __version__
from .plexsync_recovery_launcher import DEPENDENCY_FOLDER
from .protocol import PLUGIN_ID

__all__ = [
    "Build",
    "DEPENDENCY_FOLDER",
    "ForeignFileError",
    "INDEX_NAME",
    "LAUNCHER_NAME",
    "MANIFEST_NAME",
    "OWN_MARKER",
    "PlannedFile",
    "PluginFile",
    "Removal",
    "ZIP_NAME",
    "build",
    "find_plugin_folders",
    "install",
    "plan_install",
    "plugin_files",
    "uninstall",
]

MANIFEST_NAME = f"{PLUGIN_ID}.yml"
LAUNCHER_NAME = "plexsync_recovery_launcher.py"
ZIP_NAME = f"{PLUGIN_ID}.zip"
INDEX_NAME = "index.yml"
#: The line the manifest and the launcher carry: a file with it is this plugin's own.
OWN_MARKER = "# PlexSync Recovery's own file"
#: What earlier versions wrote instead.
_EARLIER_MARKERS = ("# Written by plexsync-recovery stash-plugin install",)
#: The record Stash's package manager writes beside a package it installed.
STASH_RECORD = "manifest"
#: Stash's date format in a source index (UTC).
INDEX_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_PACKAGE = _PACKAGE_DIR.name
_SHIPPED_SUFFIXES = (".py",)
_SHIPPED_NAMES = ("py.typed",)


class ForeignFileError(Exception):
    """A file the installer would write exists and was not written by it."""


@dataclass(frozen=True)
class PluginFile:
    """One file of the plugin.

    Attributes:
        name: Its path inside the plugin's folder, ``/``-separated.
        content: Its bytes.
    """

    name: str
    content: bytes


@dataclass(frozen=True)
class PlannedFile:
    """One file and what installing does to it.

    Attributes:
        path: Where it goes.
        name: Its path inside the plugin's folder, ``/``-separated.
        content: What it holds (empty for a removal).
        action: ``create``, ``update``, ``unchanged``, ``remove`` (an older version's file in the
            package folder) or ``foreign`` (someone else's file: never overwritten).
    """

    path: Path
    name: str
    content: bytes
    action: str


@dataclass(frozen=True)
class Build:
    """What ``build`` wrote.

    Attributes:
        zip_path: The zip.
        index_path: The source index.
        sha256: The zip's SHA-256, as the index gives it.
        version: The plugin's version.
        date: The index's date (UTC, Stash's format).
        files: How many files the zip holds.
    """

    zip_path: Path
    index_path: Path
    sha256: str
    version: str
    date: str
    files: int


@dataclass(frozen=True)
class Removal:
    """What ``uninstall`` did in one plugin folder.

    Attributes:
        folder: The plugin's folder.
        removed: What it removed (files and folders).
        left: What it left there (not the plugin's); the folder stays when this is not empty.
    """

    folder: Path
    removed: tuple[Path, ...]
    left: tuple[Path, ...]


def _shipped(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _license() -> bytes | None:
    """The license text, from a source checkout or the installed distribution's metadata."""
    beside = _PACKAGE_DIR.parent / "LICENSE"
    if beside.is_file():
        return beside.read_bytes()
    from importlib import metadata

    try:
        files = metadata.distribution("plexsync-recovery-plugin").files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == "LICENSE":
            return Path(str(entry.locate())).read_bytes()
    return None


#: Subpackages Stash never runs: the benchmark, the demo and its loopback servers, the test kit.
_LEFT_OUT = ("dev", "testing")


def plugin_files() -> list[PluginFile]:
    """Every file of the plugin, sorted by name: manifest, launcher, license, this package's source (not ``_LEFT_OUT``)."""
    files = [PluginFile(MANIFEST_NAME, _shipped(MANIFEST_NAME)), PluginFile(LAUNCHER_NAME, _shipped(LAUNCHER_NAME))]
    license_text = _license()
    if license_text is not None:
        files.append(PluginFile("LICENSE", license_text))
    for path in sorted(_PACKAGE_DIR.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file() or path.relative_to(_PACKAGE_DIR).parts[0] in _LEFT_OUT:
            continue
        if path.suffix in _SHIPPED_SUFFIXES or path.name in _SHIPPED_NAMES:
            relative = path.relative_to(_PACKAGE_DIR).as_posix()
            files.append(PluginFile(f"{_PACKAGE}/{relative}", path.read_bytes()))
    return sorted(files, key=lambda item: item.name)


def _manifest_field(text: str, key: str) -> str:
    """A top-level plain scalar of the manifest (``name:``, ``description:``)."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"the manifest has no {key!r} line")


def _index_date(date: _dt.datetime | None) -> _dt.datetime:
    """The build's date: ``date``, else ``$SOURCE_DATE_EPOCH``, else now; UTC, whole seconds.

    Raises:
        ValueError: ``SOURCE_DATE_EPOCH`` is not a whole number of seconds.
    """
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if epoch:
            try:
                date = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
            except (ValueError, OverflowError, OSError):
                raise ValueError(f"SOURCE_DATE_EPOCH must be whole Unix seconds, got {epoch!r}") from None
        else:
            date = _dt.datetime.now(_dt.timezone.utc)
    if date.tzinfo is None:
        date = date.replace(tzinfo=_dt.timezone.utc)
    return date.astimezone(_dt.timezone.utc).replace(microsecond=0)


def _zip_bytes(files: list[PluginFile], date: _dt.datetime) -> bytes:
    stamp = max(date, _dt.datetime(1980, 1, 1, tzinfo=_dt.timezone.utc)).timetuple()[:6]  # zip's first date
    buffer = io.BytesIO()  # the package's source: well under a megabyte
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in files:
            info = zipfile.ZipInfo(item.name, date_time=stamp)
            info.create_system = 3  # Unix: the mode below is what Stash gives the file
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, item.content, compresslevel=9)
    return buffer.getvalue()


def _index_text(manifest: str, sha256: str, date: str) -> str:
    quoted = json.dumps
    return (
        "# A Stash plugin source: Settings > Plugins > Available Plugins > Add Source, with this file's address.\n"
        f"- id: {PLUGIN_ID}\n"
        f"  name: {quoted(_manifest_field(manifest, 'name'))}\n"
        "  metadata:\n"
        f"    description: {quoted(_manifest_field(manifest, 'description'))}\n"
        f"  version: {quoted(__version__)}\n"
        f"  date: {quoted(date)}\n"
        f"  path: {ZIP_NAME}\n"
        f"  sha256: {sha256}\n"
        "  requires:\n"
        "    - PythonDepManager\n"
    )


def _write_atomically(path: Path, content: bytes) -> None:
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def build(out_dir: str | Path, *, date: _dt.datetime | None = None) -> Build:
    """Write the plugin's zip and its source index into ``out_dir`` (created if missing).

    Args:
        out_dir: Where ``PlexSyncRecovery.zip`` and ``index.yml`` go (both replaced).
        date: The index's date (Stash offers an update when it is later than the installed one);
            ``$SOURCE_DATE_EPOCH`` or now when None.

    Raises:
        ValueError: ``SOURCE_DATE_EPOCH`` is set but not a number of seconds.
        OSError: ``out_dir`` cannot be created or written.
    """
    when = _index_date(date)
    files = plugin_files()
    data = _zip_bytes(files, when)
    sha256 = hashlib.sha256(data).hexdigest()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    date_text = when.strftime(INDEX_DATE_FORMAT)
    manifest = _shipped(MANIFEST_NAME).decode("utf-8")
    _write_atomically(folder / ZIP_NAME, data)
    _write_atomically(folder / INDEX_NAME, _index_text(manifest, sha256, date_text).encode("utf-8"))
    return Build(folder / ZIP_NAME, folder / INDEX_NAME, sha256, __version__, date_text, len(files))


def _is_own(path: Path) -> bool | None:
    """Whether an existing manifest or launcher is this plugin's (None: there is no such file)."""
    try:
        head = path.read_bytes()[:4096].decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except (IsADirectoryError, PermissionError):
        return False
    return any(marker in head for marker in (OWN_MARKER, *_EARLIER_MARKERS))


def find_plugin_folders(plugins_dir: str | Path) -> list[Path]:
    """The folders of Stash's plugins folder holding this plugin's manifest (``<plugins>/PlexSyncRecovery``, or a sub-folder's)."""
    root = Path(plugins_dir)
    found = [root / PLUGIN_ID] if (root / PLUGIN_ID / MANIFEST_NAME).is_file() else []
    try:
        children = sorted(child for child in root.iterdir() if child.is_dir() and child.name != PLUGIN_ID)
    except OSError:
        return found
    for child in children:
        for folder in (child, child / PLUGIN_ID):
            if (folder / MANIFEST_NAME).is_file() and folder not in found:
                found.append(folder)
    return found


def _target_folder(root: Path) -> Path:
    own = [folder for folder in find_plugin_folders(root) if _is_own(folder / MANIFEST_NAME)]
    return own[0] if own else root / PLUGIN_ID


def _package_files_on_disk(folder: Path) -> list[Path]:
    package = folder / _PACKAGE
    if package.is_symlink() or not package.is_dir():
        return []
    return sorted(path for path in package.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def plan_install(plugins_dir: str | Path) -> list[PlannedFile]:
    """Say what installing into ``plugins_dir`` would do to each file; change nothing."""
    folder = _target_folder(Path(plugins_dir))
    planned = []
    for item in plugin_files():
        path = folder / item.name
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        except (IsADirectoryError, PermissionError):
            planned.append(PlannedFile(path, item.name, item.content, "foreign"))
            continue
        if current is None:
            action = "create"
        elif current == item.content:
            action = "unchanged"
        elif item.name in (MANIFEST_NAME, LAUNCHER_NAME) and not _is_own(path):
            action = "foreign"
        else:
            action = "update"
        planned.append(PlannedFile(path, item.name, item.content, action))
    wanted = {folder / item.name for item in plugin_files()}
    planned.extend(PlannedFile(path, path.relative_to(folder).as_posix(), b"", "remove")
                   for path in _package_files_on_disk(folder) if path not in wanted)
    return planned


def install(plugins_dir: str | Path) -> list[PlannedFile]:
    """Write the plugin into ``plugins_dir``; return what was done to each file.

    Raises:
        FileNotFoundError: ``plugins_dir`` is not an existing folder.
        ForeignFileError: A manifest or launcher to write exists and is not this plugin's (nothing is written).
    """
    root = Path(plugins_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Stash's plugins folder {str(root)!r} does not exist")
    planned = plan_install(root)
    foreign = [item.path for item in planned if item.action == "foreign"]
    if foreign:
        names = ", ".join(repr(str(path)) for path in foreign)
        raise ForeignFileError(f"{names} exists and is not PlexSync Recovery's: move it away first")
    for item in planned:
        if item.action in ("create", "update"):
            item.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(item.path, item.content)
        elif item.action == "remove":
            item.path.unlink(missing_ok=True)
    folder = _target_folder(root)
    _remove_empty_folders(folder / _PACKAGE)
    return planned


def _remove_empty_folders(top: Path) -> None:
    if top.is_symlink() or not top.is_dir():
        return
    for path in sorted((p for p in top.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if path.name == "__pycache__" and not (path.parent / "__init__.py").exists():
            shutil.rmtree(path, ignore_errors=True)
        try:
            path.rmdir()
        except OSError:
            pass


def _stash_record_is_ours(path: Path) -> list[str] | None:
    """The files Stash's package-manager record lists, when it is this plugin's record; else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if f"id: {PLUGIN_ID}" not in (line.strip() for line in lines):
        return None
    files, in_files = [], False
    for line in lines:
        if line.startswith("files:"):
            in_files = True
        elif in_files and line.lstrip().startswith("- "):
            files.append(line.lstrip()[2:].strip().strip("'\""))
        elif in_files and line and not line.startswith(" "):
            in_files = False
    return files


def _remove(path: Path) -> bool:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False


def uninstall(plugins_dir: str | Path) -> list[Removal]:
    """Remove this plugin's files from ``plugins_dir``; return what was removed and left, per folder.

    Only a folder whose manifest is this plugin's is touched; in it, the manifest, the
    launcher, the license, the package folder, the launcher's ``py_dependencies/`` and the
    files Stash's package-manager record lists (then the record). The folder goes when empty.

    Raises:
        FileNotFoundError: ``plugins_dir`` is not an existing folder.
    """
    root = Path(plugins_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Stash's plugins folder {str(root)!r} does not exist")
    done = []
    names = {item.name for item in plugin_files() if "/" not in item.name}
    for folder in find_plugin_folders(root):
        if not _is_own(folder / MANIFEST_NAME):
            continue
        removed: list[Path] = []
        listed = _stash_record_is_ours(folder / STASH_RECORD)
        targets = [folder / name for name in sorted(names)] + [folder / _PACKAGE, folder / DEPENDENCY_FOLDER]
        targets += [folder / name for name in listed or [] if ".." not in Path(name).parts and not Path(name).is_absolute()]
        if listed is not None:
            targets.append(folder / STASH_RECORD)
        pycache = folder / "__pycache__"
        if pycache.is_dir() and all(p.name.startswith("plexsync_recovery_launcher.") for p in pycache.iterdir()):
            targets.append(pycache)
        for target in targets:
            if target.exists() or target.is_symlink():
                if _remove(target):
                    removed.append(target)
        left = tuple(sorted(folder.iterdir())) if folder.is_dir() else ()
        if not left:
            folder.rmdir()
        done.append(Removal(folder, tuple(removed), left))
    return done
