"""Which command-line values are secrets, and how they are taken in.

Secrets are found twice: before parsing (``early_secrets``: the values of the secret flags,
and of any misspelt flag that still looks like one, and the secret variables), so that even
a parse error that echoes the command line is masked; and once resolved
(``secret_setting``), when each is stripped, refused if too short to be real, and registered
with the package's redactor.
"""

from __future__ import annotations

from typing import Mapping

from ..redaction import MIN_SECRET_LENGTH, clean_secret, register_secret

__all__ = ["SECRET_FLAGS", "early_secrets", "secret_setting"]

#: The flags whose values are secrets (scrubbed from every output, even before parsing).
SECRET_FLAGS = ("--plex-token", "--stash-api-key")
_SECRET_VARIABLES = ("PLEX_TOKEN", "STASH_API_KEY")
_SECRET_HINTS = ("tok", "key", "api", "secret", "pass", "notif")  # notif: --notify URLs hold secrets


def _looks_secret(flag: str) -> bool:
    # The real secret flags, and any misspelling of them that still looks like one.
    name = flag.lower()
    return flag in SECRET_FLAGS or (name.startswith("-") and any(part in name for part in _SECRET_HINTS))


def _flag_secrets(argv: list[str]) -> list[str]:
    found = []
    for index, token in enumerate(argv):
        flag, equals, value = token.partition("=")
        if not _looks_secret(flag):
            continue
        if equals:
            found.append(value)
        elif index + 1 < len(argv):
            found.append(argv[index + 1])
    return found


def early_secrets(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """Secrets visible before parsing (secret flags' values, secret variables), stripped."""
    values = _flag_secrets(argv) + [environ.get(name, "") for name in _SECRET_VARIABLES]
    return [clean for clean in map(clean_secret, values) if clean]


def secret_setting(value: str | None, what: str, given_by: str) -> str | None:
    """Strip a secret, refuse one too short to be real, and register it for masking.

    Args:
        value: As given (a flag's or a variable's value), or None.
        what: What it is, for the message (``"Stash API key"``).
        given_by: Where it comes from, for the message (``"--stash-api-key / STASH_API_KEY"``).

    Returns:
        The stripped secret, or None when none (or only whitespace) was given.

    Raises:
        ValueError: It is shorter than ``MIN_SECRET_LENGTH`` (the message does not show it).
    """
    secret = clean_secret(value)
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"the {what} ({given_by}) is {len(secret)} characters long: too short to be a real one"
            f" (at least {MIN_SECRET_LENGTH}); check the value"
        )
    register_secret(secret, what)
    return secret
