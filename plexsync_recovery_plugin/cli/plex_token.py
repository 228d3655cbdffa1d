"""Refusing to start a recovery with a Plex token that Plex rejects.

A rejected token is a configuration error, not an outage: waiting does not fix it, so a
command stops at once (exit 2) with one line that names where the token comes from.
"""

from __future__ import annotations

from ..errors import CLI, PLEX_TOKEN, hint
from ..plex.health import PLEX_TOKEN_REJECTED, probe_plex, token_rejection
from .settings import Settings

__all__ = ["TOKEN_HINT", "refuse_rejected_plex_token"]

#: Where the CLI takes the Plex token from.
TOKEN_HINT = hint(PLEX_TOKEN, CLI)


def refuse_rejected_plex_token(settings: Settings, timeout: float = 5.0) -> None:
    """Probe Plex once; a Plex that is down passes (recovery defers), a rejected token does not.

    Raises:
        ConfigurationError: Plex answered 401/403 to the configured token (or to none); ``main``
            prints it with ``TOKEN_HINT`` and exits 2.
    """
    plex = settings.plex_connection(timeout=timeout)
    try:
        probe = probe_plex(plex, timeout=timeout)
    finally:
        plex.close()
    if probe.state != PLEX_TOKEN_REJECTED:
        return
    raise token_rejection(plex)
