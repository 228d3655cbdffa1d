"""Which DLQ entries a recovery selects, what an error type or message means, and what a run leaves.

Selection is conservative: only failures an outage explains are retried. ``PlexServerDown``
always; PlexSync's worker (Stash2Plex 1.6) never dead-letters that type, though: it puts
the job back and lets its circuit breaker wait. What an outage does push into the DLQ are
``PlexTemporaryError`` entries worded as Plex timing out, dropping the connection or
answering 5xx (its ``translate_plex_exception``); every recovery runs over an outage
window, so those are recovered by default too (``outage_casualties``). ``PlexNotFound``,
other temporary errors and the permanent types are not; ``include_optional`` adds the
first two. ``dlq_recovery`` keeps the seed's names for all of this.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .dlq_window import DlqWindow

if TYPE_CHECKING:
    from .dlq import DeadLetterQueue

__all__ = [
    "OPTIONAL_RETRY_ERROR_TYPES",
    "OUTAGE_CASUALTY_ERROR_TYPE",
    "PERMANENT_ERROR_TYPES",
    "SAFE_RETRY_ERROR_TYPES",
    "Selection",
    "get_error_types_for_recovery",
    "is_outage_casualty",
    "left_text",
]

logger = logging.getLogger(__name__)

#: An outage explains these failures: retrying them after it is always safe.
SAFE_RETRY_ERROR_TYPES = ["PlexServerDown"]
#: Often outage-related, sometimes not (a 404 can be a scene Plex has not scanned yet): opt-in.
OPTIONAL_RETRY_ERROR_TYPES = ["PlexTemporaryError", "PlexNotFound"]
#: Retrying cannot help: never recovered.
PERMANENT_ERROR_TYPES = ["PlexPermanentError", "PlexAuthError", "PlexPermissionError"]
#: The optional type of which an outage's casualties are recovered by default (``is_outage_casualty``).
OUTAGE_CASUALTY_ERROR_TYPE = "PlexTemporaryError"

#: How PlexSync's worker words a ``PlexTemporaryError`` when Plex timed out, dropped or refused
#: the connection, or answered 5xx (``Timeout error: ...``, ``Connection error: ...``,
#: ``Server error (503): ...``); 429 (rate limiting) and anything else are Plex answering.
_OUTAGE_WORDING = re.compile(r"\s*(?:timeout error|connection error|server error \(5\d\d\))\s*:", re.IGNORECASE)


def get_error_types_for_recovery(include_optional: bool = False) -> list[str]:
    """Return a new list of the error types to recover: the safe ones, plus the optional ones if asked."""
    types = list(SAFE_RETRY_ERROR_TYPES)
    if include_optional:
        types.extend(OPTIONAL_RETRY_ERROR_TYPES)
    return [name for name in types if name not in PERMANENT_ERROR_TYPES]


def is_outage_casualty(error_type: Any, error_message: Any) -> bool:
    """Whether an entry failed because Plex was down: the one reading of what an error means.

    ``PlexServerDown`` always; a ``PlexTemporaryError`` whose stored message shows Plex
    unreachable, timing out or answering 5xx (a ``PlexServerDown`` in all but name); nothing else.
    """
    if error_type in SAFE_RETRY_ERROR_TYPES:
        return True
    return (error_type == OUTAGE_CASUALTY_ERROR_TYPE and isinstance(error_message, str)
            and _OUTAGE_WORDING.match(error_message) is not None)


def left_text(left: Mapping[str, int], include_optional: bool) -> str:
    """One line on what a run left in its window, by type, and how to include it ("" when nothing)."""
    if not left:
        return ""
    counted = ", ".join(f"{count} {name}" for name, count in sorted(left.items()))
    optional = [name for name in OPTIONAL_RETRY_ERROR_TYPES if name in left]
    if optional and not include_optional:
        hint = f"--include-optional recovers the {' and '.join(optional)} entries"
    else:
        hint = "no option recovers these types"
    return f"left {counted} in this window; {hint}"


@dataclass(frozen=True)
class Selection:
    """What a recovery reads from an outage window.

    Attributes:
        include_optional: Also every ``PlexTemporaryError`` and ``PlexNotFound`` entry.
        outage_casualties: Also the ``PlexTemporaryError`` entries ``is_outage_casualty`` reads
            as the outage's (on by default; ``include_optional`` takes them all anyway).
    """

    include_optional: bool = False
    outage_casualties: bool = True

    @property
    def _casualties_only(self) -> bool:
        """Whether ``PlexTemporaryError`` entries are selected by their message (not all, not none)."""
        return self.outage_casualties and not self.include_optional

    @property
    def error_types(self) -> list[str]:
        """The ``error_type`` names read: ``get_error_types_for_recovery``'s, and the casualties' type."""
        types = get_error_types_for_recovery(self.include_optional)
        if self._casualties_only and OUTAGE_CASUALTY_ERROR_TYPE not in types:
            types.append(OUTAGE_CASUALTY_ERROR_TYPE)
        return types

    def describe(self) -> str:
        """The selection in words, for "nothing to do" lines: ``PlexServerDown or outage PlexTemporaryError``."""
        names = get_error_types_for_recovery(self.include_optional)
        if self._casualties_only:
            names.append(f"outage {OUTAGE_CASUALTY_ERROR_TYPE}")
        return " or ".join(names)

    @property
    def by_message(self) -> dict[str, Callable[[Any], bool]]:
        """Error type -> which of its entries are read, by message (``is_outage_casualty``)."""
        if not self._casualties_only:
            return {}
        return {OUTAGE_CASUALTY_ERROR_TYPE: functools.partial(is_outage_casualty, OUTAGE_CASUALTY_ERROR_TYPE)}

    def window(self, dlq: "DeadLetterQueue", start: float, end: float) -> DlqWindow:
        """The selected entries of ``start..end`` in scene order (within a scene, newest first)."""
        return dlq.window(start, end, self.error_types, order="scene", by_message=self.by_message)

    def note_left(self, window: DlqWindow) -> dict[str, int]:
        """What ``window`` holds besides the selected entries, by error type, said in one log line; never raises.

        A warning when an option would recover some of it (the user may want it), else info.
        """
        try:
            left = window.left_by_error_type()
        except Exception as error:  # the run stands; only its note on the rest is missing
            logger.warning("could not count the entries left in the window: %s", error)
            return {}
        text = left_text(left, self.include_optional)
        if text:
            optional = not self.include_optional and any(name in left for name in OPTIONAL_RETRY_ERROR_TYPES)
            logger.log(logging.WARNING if optional else logging.INFO, "%s", text)
        return left
