"""What each command's ``--help`` ends with (its exit statuses), which shared flags it offers, and
which ``--error-type`` values it accepts.

Every command's help shows the shared flags it uses and no other: ``outages`` and ``dlq`` read
a data directory and ask neither Plex nor Stash, ``bench`` runs on its own test servers.
"""

from __future__ import annotations

import argparse
from typing import Any, Collection

__all__ = ["EXIT_STATUS", "LOG_FLAGS", "REPORT_FLAGS", "SelectedFlags", "check_error_types"]

#: The shared flags of a command that only prints (no data directory of the user's).
LOG_FLAGS = ("--json", "--verbose", "--quiet")
#: The shared flags of a read-only report on a data directory.
REPORT_FLAGS = ("--data-dir", *LOG_FLAGS)

#: Command -> the ``exit status:`` text its help ends with.
EXIT_STATUS = {
    "main": "exit status: 0 on success, 1 when the work failed, 2 on bad flags or configuration (or a missing"
    " extra), 130 on Ctrl-C; each command's --help says more.",
    "report": "exit status: 0 on success, 1 when a file cannot be read, 2 on bad flags or configuration.",
    "watch": "exit status: 0 when stopped by SIGINT or SIGTERM, 2 on bad flags or configuration (--notify without"
    " the notify extra too), 130 when a second signal interrupts it.",
    "demo": "exit status: 0 when the outage was recovered, 1 when it was not, 2 without the demo extra.",
    "bench": "exit status: 0 when every path ran and their results agree, 1 when a path failed or they differ,"
    " 2 on bad flags or without the demo extra.",
    "stash-plugin": "exit status: 0 when installed (or shown), 1 when the folder is missing or a file in the way"
    " is not ours, 2 on bad flags.",
}


class SelectedFlags:
    """An argument group whose ``--help`` shows only the flags named in ``only`` (by any option string).

    The others are still accepted (and ignored by the command), so a script that passes the
    same shared flags to every command keeps working; they are only left out of the help.

    Args:
        group: Where the flags go.
        only: Option strings to show (``"--data-dir"``); None shows every flag.
    """

    def __init__(self, group: Any, only: Collection[str] | None) -> None:
        self.group = group
        self.only = None if only is None else frozenset(only)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        """Add the flag; hidden from the help unless it is selected."""
        if self.only is not None and not self.only.intersection(names):
            kwargs["help"] = argparse.SUPPRESS
        action: argparse.Action = self.group.add_argument(*names, **kwargs)
        return action


def check_error_types(wanted: list[str], in_dlq: Collection[str | None]) -> None:
    """Refuse an ``--error-type`` that is neither one of PlexSync's Plex error types nor in this DLQ.

    Raises:
        UsageError: One is unknown; the message lists the known types (and a close match).
    """
    import difflib

    from ..sync_queue.dlq_recovery import (
        OPTIONAL_RETRY_ERROR_TYPES,
        PERMANENT_ERROR_TYPES,
        SAFE_RETRY_ERROR_TYPES,
    )
    from .errors import UsageError

    known = sorted(
        {*SAFE_RETRY_ERROR_TYPES, *OPTIONAL_RETRY_ERROR_TYPES, *PERMANENT_ERROR_TYPES}
        | {name for name in in_dlq if name}
    )
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown --error-type {name!r}{hint}: known types are {', '.join(known)}")
