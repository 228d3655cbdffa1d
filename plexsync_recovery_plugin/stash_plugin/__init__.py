"""The Stash plugin: recovery runs inside Stash, with PlexSync's settings and data directory.

``PlexSyncRecovery.yml`` (the manifest) and ``plexsync_recovery_launcher.py`` (the script
Stash runs) are shipped here and written into Stash's plugins folder by
``plexsync-recovery stash-plugin install``. The launcher calls :func:`.entry.main`.

Kept free of imports: the hook's quick check loads this package on every scene update.
"""

__all__: list[str] = []
