"""The interop tests use the command-line fixtures too."""

from tests.cli.conftest import cli_env, plex_server, run_cli, stash_server  # noqa: F401
