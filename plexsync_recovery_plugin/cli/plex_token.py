"""Refusing to start a recovery with a Plex token that Plex rejects.

A rejected token is a configuration error, not an outage: waiting does not fix it, so a
command stops at once (exit 2) with one line that names where the token comes from.
"""

from __future__ import annotations

from ..plex.health import PLEX_TOKEN_REJECTED, probe_plex
from .errors import UsageError
from .settings import Settings

__all__ = ["TOKEN_HINT", "refuse_rejected_plex_token"]

#: Where the CLI takes the Plex token from.
TOKEN_HINT = "set a valid Plex token with PLEX_TOKEN or --plex-token"


def refuse_rejected_plex_token(settings: Settings, timeout: float = 5.0) -> None:
    """Probe Plex once; a Plex that is down passes (recovery defers), a rejected token does not.

    Raises:
        UsageError: Plex answered 401/403 to the configured token (or to none).
    """
    plex = settings.plex_connection(timeout=timeout)
    try:
        probe = probe_plex(plex, timeout=timeout)
    finally:
        plex.close()
    if probe.state != PLEX_TOKEN_REJECTED:
        return
    given = "no token was given" if not settings.plex_token else "it rejected the token"
    raise UsageError(f"Plex at {settings.plex_url} answered 401/403: {given}; {TOKEN_HINT}")
