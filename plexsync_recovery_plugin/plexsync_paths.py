"""Where PlexSync (Stash2Plex) keeps its data, found the way PlexSync itself finds it.

PlexSync's data directory is ``$STASH_PLUGIN_DATA`` when that is set, else the ``data``
folder beside PlexSync's own script, i.e. ``<Stash plugins folder>/<PlexSync's folder>/data``.
PlexSync's folder is the one holding its manifest ``Stash2Plex.yml`` (Stash names a plugin
by its manifest file, so the plugin id is ``Stash2Plex`` whatever the folder is called).

Standard library only: the Stash hook resolves this on every scene update.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_STASH_PLUGINS_DIR",
    "PLEXSYNC_DATA_FOLDER",
    "PLEXSYNC_PLUGIN_ID",
    "cli_default_data_dir",
    "plexsync_data_dir",
    "plexsync_plugin_dir",
]

#: PlexSync's plugin id in Stash (its manifest is ``Stash2Plex.yml``); its settings are keyed by it.
PLEXSYNC_PLUGIN_ID = "Stash2Plex"
#: The variable that overrides the data directory, for PlexSync and for this plugin.
DATA_DIR_ENV = "STASH_PLUGIN_DATA"
#: The folder inside PlexSync's plugin folder that holds its data.
PLEXSYNC_DATA_FOLDER = "data"
#: Stash's plugins folder when Stash runs with its default configuration folder (``~/.stash``).
DEFAULT_STASH_PLUGINS_DIR = Path("~/.stash/plugins")


def plexsync_plugin_dir(plugins_dir: str | Path, plugin_id: str = PLEXSYNC_PLUGIN_ID) -> Path | None:
    """Return the folder of Stash's plugins folder that holds PlexSync's manifest, or None.

    ``<plugins_dir>/<plugin_id>/`` is looked at first (where PlexSync's install guide and
    Stash's plugin manager put it), then every folder one level down.
    """
    root = Path(plugins_dir)
    manifest = f"{plugin_id}.yml"
    if (root / plugin_id / manifest).is_file():
        return root / plugin_id
    try:
        folders = sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:
        return None
    return next((folder for folder in folders if (folder / manifest).is_file()), None)


def plexsync_data_dir(
    plugins_dir: str | Path | None,
    environ: Mapping[str, str] | None = None,
    plugin_id: str = PLEXSYNC_PLUGIN_ID,
) -> Path | None:
    """Return PlexSync's data directory as PlexSync would choose it, or None when it cannot be known.

    Args:
        plugins_dir: Stash's plugins folder, or None when unknown.
        environ: The environment (default ``os.environ``); ``STASH_PLUGIN_DATA`` wins.
        plugin_id: PlexSync's plugin id.
    """
    env = os.environ if environ is None else environ
    configured = env.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    if plugins_dir is None:
        return None
    folder = plexsync_plugin_dir(plugins_dir, plugin_id)
    return folder / PLEXSYNC_DATA_FOLDER if folder is not None else None


def cli_default_data_dir() -> Path | None:
    """The data directory the command line uses when neither ``--data-dir`` nor the variable is given.

    PlexSync's folder under Stash's default plugins folder, if it exists there; else None.
    """
    data_dir = plexsync_data_dir(DEFAULT_STASH_PLUGINS_DIR.expanduser(), environ={})
    return data_dir if data_dir is not None and data_dir.is_dir() else None
