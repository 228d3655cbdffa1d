"""The one error model for credentials: a Plex token or a Stash credential that is missing or refused.

Waiting does not fix a refused credential, so it is never taken for an outage: a run that
meets one stops with a ``ConfigurationError`` as its error (``Run.error``), and every front
door maps it the same way, with ``explain(error, door)`` adding how to fix it there:

* the command line exits 2 naming the flag and the environment variable;
* the ``watch`` daemon logs one line when it starts (and when it changes) and keeps probing;
* a Stash task fails (its ``error`` is set) naming the plugin setting;
* the Stash hook logs one error line and still exits 0.

A process tells once which door it is (``set_door``), so that the one line the library logs
for a failed run already names the setting to fix there; ``ConfigurationError.logged`` says
that line was written, so a door does not write a second one.

What the error says is built once, here, from what was used: a Plex token or none at all,
a Stash API key, Stash's own plugin session, or no Stash credential at all. A server's
answer is never quoted whole: ``answer_excerpt`` keeps its first meaningful line, masked.
"""

from __future__ import annotations

import html
import re

from .redaction import safe_excerpt, url_for_display

__all__ = [
    "CLI",
    "ConfigurationError",
    "PLEX_TOKEN",
    "STASH",
    "STASH_API_KEY",
    "STASH_SESSION",
    "answer_excerpt",
    "explain",
    "hint",
    "plex_token_rejected",
    "set_door",
    "stash_credential_rejected",
]

#: Which credential a ``ConfigurationError`` is about.
PLEX_TOKEN = "plex_token"
STASH_API_KEY = "stash_api_key"
STASH_SESSION = "stash_session"

#: The front doors ``explain`` knows how to advise.
CLI = "cli"
STASH = "stash"

_HINTS = {
    CLI: {
        PLEX_TOKEN: "set a valid Plex token with PLEX_TOKEN or --plex-token",
        STASH_API_KEY: "set a valid Stash API key with STASH_API_KEY or --stash-api-key",
        STASH_SESSION: "give a Stash API key with STASH_API_KEY or --stash-api-key",
    },
    STASH: {
        PLEX_TOKEN: "set plex_token (Plex Token) in Stash2Plex's plugin settings in Stash (Settings > Plugins),"
        " or in PlexSyncRecovery's to override it",
        STASH_API_KEY: "check Stash's API key (Settings > Security)",
        STASH_SESSION: "Stash refused the session it opened for this plugin: reload Stash and run the task again"
        " (check Settings > Security if it keeps happening)",
    },
}
_GENERIC_HINTS = {
    PLEX_TOKEN: "configure a valid Plex token (PLEX_TOKEN / --plex-token; plex_token in Stash's plugin settings)",
    STASH_API_KEY: "configure a valid Stash API key (STASH_API_KEY / --stash-api-key)",
    STASH_SESSION: "Stash refused its plugin session: reload Stash, or give an API key",
}

# Longest excerpt of a server's answer kept in a message.
_EXCERPT_LENGTH = 120
_TAG = re.compile(r"<[^>]*>")


_door: str | None = None


def set_door(door: str | None) -> None:
    """Say which front door this process is (``CLI``, ``STASH``): ``explain`` then advises for it."""
    global _door
    _door = door


class ConfigurationError(Exception):
    """A credential is missing or refused: fixing the configuration is the cure, not waiting.

    Attributes:
        credential: ``PLEX_TOKEN``, ``STASH_API_KEY`` or ``STASH_SESSION``.
        logged: Whether the library has logged it already (a door then does not repeat it).
    """

    logged = False

    def __init__(self, message: str, credential: str) -> None:
        super().__init__(message)
        self.credential = credential


def hint(credential: str, door: str | None = None) -> str:
    """How to fix ``credential`` from ``door`` (``CLI``, ``STASH``; None: this process's door, or in general)."""
    return _HINTS.get(door or _door or "", {}).get(credential) or _GENERIC_HINTS.get(credential, "")


def explain(error: ConfigurationError, door: str | None = None) -> str:
    """The error's message and how to fix it from ``door`` (None: this process's door, see ``set_door``)."""
    advice = hint(error.credential, door)
    return f"{error}; {advice}" if advice else str(error)


def answer_excerpt(text: str | None) -> str:
    """The first meaningful line of a server's answer (an HTML page's text, not its markup), masked and short."""
    for line in (text or "").splitlines():
        plain = " ".join(html.unescape(_TAG.sub(" ", line)).split())
        if plain:
            return safe_excerpt(plain, _EXCERPT_LENGTH)
    return ""


def plex_token_rejected(url: str, token_given: bool, status: str = "401/403") -> ConfigurationError:
    """Plex refused the token (or the lack of one)."""
    given = "it rejected the token" if token_given else "no token was given"
    return ConfigurationError(f"Plex at {url_for_display(url)} answered {status}: {given}", PLEX_TOKEN)


def stash_credential_rejected(url: str, status: int, reason: str, credential: str | None) -> ConfigurationError:
    """Stash answered 401/403; ``credential`` is what was sent (``STASH_API_KEY``, ``STASH_SESSION``, None)."""
    where, answer = f"Stash at {url_for_display(url)}", f"HTTP {status} {answer_excerpt(reason)}".strip()
    if credential is None:
        return ConfigurationError(f"{where} answered {answer}: no API key was given", STASH_API_KEY)
    what = "the API key" if credential == STASH_API_KEY else "the Stash session"
    verb = "rejected" if status == 401 else "refused access with"
    return ConfigurationError(f"{where} {verb} {what} ({answer})", credential)
