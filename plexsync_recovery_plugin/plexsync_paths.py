"""Where PlexSync (Stash2Plex) keeps its data, found the way PlexSync finds it, wherever Stash put PlexSync.

PlexSync's data directory is ``$STASH_PLUGIN_DATA`` when that is set, else the ``data``
folder beside PlexSync's own script: ``<PlexSync's plugin folder>/data``. PlexSync's folder
is the one holding its manifest ``Stash2Plex.yml`` (Stash names a plugin by its manifest
file, so the plugin id is ``Stash2Plex`` whatever the folder is called). It is looked for in
Stash's plugins folder and one level down, where Stash's package manager puts each source's
plugins (``<plugins>/<source path>/Stash2Plex/``); a ``Stash2Plex/data`` folder without the
manifest beside it (a copy, a manifest renamed) counts too. Every "not found" names the places
looked at (``DataDirSearch.looked``).

Stash's plugins folder is ``plugins_path`` in Stash's ``config.yml``, by default
``plugins`` in Stash's configuration folder: ``~/.stash/plugins`` on bare metal,
``/root/.stash/plugins`` in Stash's official container.

Standard library only: the Stash hook resolves this on every scene update (a few ``stat``
calls when PlexSync is where Stash puts it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

__all__ = [
    "CONTAINER_STASH_CONFIG_DIR",
    "DATA_DIR_ENV",
    "DEFAULT_STASH_CONFIG_DIR",
    "DEFAULT_STASH_PLUGINS_DIR",
    "DataDirSearch",
    "PLEXSYNC_DATA_FOLDER",
    "PLEXSYNC_PLUGIN_ID",
    "cli_data_dir_search",
    "cli_default_data_dir",
    "find_plexsync_data_dir",
    "plexsync_data_dir",
    "plexsync_plugin_dir",
    "stash_plugins_dir",
]

#: PlexSync's plugin id in Stash (its manifest is ``Stash2Plex.yml``); its settings are keyed by it.
PLEXSYNC_PLUGIN_ID = "Stash2Plex"
#: The variable that overrides the data directory, for PlexSync and for this plugin.
DATA_DIR_ENV = "STASH_PLUGIN_DATA"
#: The folder inside PlexSync's plugin folder that holds its data.
PLEXSYNC_DATA_FOLDER = "data"
#: Stash's configuration folder on bare metal, and in Stash's official container.
DEFAULT_STASH_CONFIG_DIR = Path("~/.stash")
CONTAINER_STASH_CONFIG_DIR = Path("/root/.stash")
#: Stash's plugins folder when Stash runs with its default configuration folder.
DEFAULT_STASH_PLUGINS_DIR = DEFAULT_STASH_CONFIG_DIR / "plugins"

_CONFIG_FILE = "config.yml"
_PLUGINS_PATH = re.compile(r"^plugins_path:\s*(.*?)\s*$")


@dataclass(frozen=True)
class DataDirSearch:
    """Where PlexSync's data directory was looked for, and what was found.

    Attributes:
        found: The data directory (it may not exist yet when PlexSync has not run), or None.
        looked: Each place looked at, in order, as text for a message.
    """

    found: Path | None
    looked: tuple[str, ...]

    def where(self) -> str:
        """The places looked at, for a "not found" message."""
        return "; ".join(self.looked) if self.looked else "nowhere (no Stash plugins folder is known)"


def stash_plugins_dir(config_dir: str | Path) -> Path:
    """Stash's plugins folder: ``plugins_path`` of ``<config_dir>/config.yml`` when set, else ``<config_dir>/plugins``."""
    folder = Path(config_dir).expanduser()
    try:
        with open(folder / _CONFIG_FILE, encoding="utf-8", errors="replace") as config:
            for line in config:
                match = _PLUGINS_PATH.match(line)
                if match and match.group(1).strip("'\""):
                    configured = Path(match.group(1).strip("'\"")).expanduser()
                    return configured if configured.is_absolute() else folder / configured
    except OSError:
        pass
    return folder / "plugins"


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return []


def plexsync_plugin_dir(plugins_dir: str | Path, plugin_id: str = PLEXSYNC_PLUGIN_ID) -> Path | None:
    """The folder of Stash's plugins folder that holds PlexSync's manifest, or None.

    ``<plugins_dir>/<plugin_id>/`` is looked at first (PlexSync's install guide), then every
    folder one level down and, in each, ``<plugin_id>/`` (a package-manager source's folder).
    """
    root = Path(plugins_dir)
    manifest = f"{plugin_id}.yml"
    if (root / plugin_id / manifest).is_file():
        return root / plugin_id
    for child in _children(root):
        for folder in (child, child / plugin_id):
            if (folder / manifest).is_file():
                return folder
    return None


def _data_without_manifest(root: Path, plugin_id: str) -> Path | None:
    """``<root>/<plugin_id>/data`` or ``<root>/*/<plugin_id>/data`` that exists, though no manifest is beside it."""
    for folder in [root / plugin_id, *(child / plugin_id for child in _children(root))]:
        if (folder / PLEXSYNC_DATA_FOLDER).is_dir():
            return folder / PLEXSYNC_DATA_FOLDER
    return None


def find_plexsync_data_dir(
    plugins_dirs: Iterable[str | Path],
    environ: Mapping[str, str] | None = None,
    plugin_id: str = PLEXSYNC_PLUGIN_ID,
) -> DataDirSearch:
    """Find PlexSync's data directory as PlexSync would choose it, in any of Stash's likely plugins folders.

    Args:
        plugins_dirs: Stash's plugins folder(s) to look in, most likely first.
        environ: The environment (default ``os.environ``); ``STASH_PLUGIN_DATA`` wins.
        plugin_id: PlexSync's plugin id.
    """
    env = os.environ if environ is None else environ
    configured = env.get(DATA_DIR_ENV)
    if configured:
        return DataDirSearch(Path(configured).expanduser(), (f"{DATA_DIR_ENV}={configured}",))
    roots = list(dict.fromkeys(Path(folder).expanduser() for folder in plugins_dirs))
    looked = tuple(f"{root}/{plugin_id}/ and {root}/*/{plugin_id}/ ({plugin_id}.yml or {PLEXSYNC_DATA_FOLDER}/)"
                   for root in roots)
    for root in roots:
        folder = plexsync_plugin_dir(root, plugin_id)
        if folder is not None:
            return DataDirSearch(folder / PLEXSYNC_DATA_FOLDER, looked)
    for root in roots:
        found = _data_without_manifest(root, plugin_id)
        if found is not None:
            return DataDirSearch(found, looked)
    return DataDirSearch(None, looked)


def plexsync_data_dir(
    plugins_dir: str | Path | None,
    environ: Mapping[str, str] | None = None,
    plugin_id: str = PLEXSYNC_PLUGIN_ID,
) -> Path | None:
    """PlexSync's data directory for one plugins folder (``find_plexsync_data_dir``'s ``found``), or None."""
    return find_plexsync_data_dir([] if plugins_dir is None else [plugins_dir], environ, plugin_id).found


def _cli_plugins_dirs() -> list[Path]:
    """Stash's plugins folders the command line looks in: the default configuration folder's, then the container's."""
    folders = []
    for config_dir in (DEFAULT_STASH_CONFIG_DIR.expanduser(), CONTAINER_STASH_CONFIG_DIR):
        for folder in (stash_plugins_dir(config_dir), config_dir / "plugins"):
            if folder not in folders:
                folders.append(folder)
    return folders


def cli_data_dir_search() -> DataDirSearch:
    """Where the command line finds PlexSync's data without ``--data-dir`` or ``STASH_PLUGIN_DATA``.

    Only a folder that exists is found (the command line never creates PlexSync's folder).
    """
    search = find_plexsync_data_dir(_cli_plugins_dirs(), environ={})
    if search.found is not None and not search.found.is_dir():
        return DataDirSearch(None, search.looked)
    return search


def cli_default_data_dir() -> Path | None:
    """The data directory the command line uses when neither ``--data-dir`` nor the variable is given, or None."""
    return cli_data_dir_search().found
