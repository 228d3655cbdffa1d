"""Which optional extra a missing module belongs to, so the error names what to install.

``demo`` and ``bench`` run the Stash test server, which needs ``graphql-core`` (the ``demo``
extra); ``--notify`` needs Apprise (the ``notify`` extra). Without them a command would
otherwise stop with a bare ``No module named 'graphql'``.
"""

from __future__ import annotations

import re

__all__ = ["DISTRIBUTION", "EXTRAS", "missing_extra"]

DISTRIBUTION = "plexsync-recovery-plugin"

#: Top-level module -> (extra, the package that provides it).
EXTRAS = {"graphql": ("demo", "graphql-core"), "apprise": ("notify", "apprise")}

_NO_MODULE = re.compile(r"No module named '([^']+)'")


def missing_extra(error: BaseException) -> str | None:
    """The one-line message for an ``ImportError`` of an extra's module, or None when it is not one."""
    if not isinstance(error, ImportError):
        return None
    name = error.name
    if not name:
        match = _NO_MODULE.search(str(error))
        name = match.group(1) if match else None
    extra = EXTRAS.get((name or "").split(".")[0])
    if extra is None:
        return None
    return (
        f"this command needs the '{extra[0]}' extra ({extra[1]} is not installed):"
        f" pip install '{DISTRIBUTION}[{extra[0]}]'"
    )
