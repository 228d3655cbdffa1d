"""``python -m plexsync_recovery_plugin``: the same as the ``plexsync-recovery`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
