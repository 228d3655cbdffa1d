"""The command line's own errors: what ``main`` prints as one line, with the exit code to use.

Kept apart so that every command module, the settings and the argument types can raise
them without importing each other.
"""

from __future__ import annotations

__all__ = ["CliError", "UsageError"]


class CliError(Exception):
    """A failure the user can act on; ``main`` prints it as one line and exits with ``exit_code``.

    ``logged`` says the library already wrote this failure as an error line (a failed run), so
    the text output does not say it twice; ``--json`` still gets its one JSON error object.
    """

    def __init__(self, message: str, exit_code: int = 1, *, logged: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.logged = logged


class UsageError(CliError):
    """Bad flags or flag values: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
