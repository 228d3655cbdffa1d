"""What starting the command line imports: the benchmark and the test kit only when their command runs."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.conftest import REPO

#: Modules that only ``bench`` and ``demo`` need; the heaviest is graphql-core (the Stash test server).
HEAVY = ("plexsync_recovery_plugin.dev", "plexsync_recovery_plugin.testing", "graphql")

_LOADED = """
import json, sys
from plexsync_recovery_plugin.cli import build_parser
try:
    build_parser().parse_args({argv})
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(argv: list[str], cli_env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED.format(argv=argv)],
        env=cli_env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )
    return list(json.loads(done.stdout.splitlines()[-1]))  # after the help text, if any


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.startswith(HEAVY)]


def test_building_the_parser_imports_no_benchmark_test_server_or_graphql(cli_env: dict[str, str]) -> None:
    assert _heavy(_modules_after(["--help"], cli_env)) == []
    assert _heavy(_modules_after(["dlq"], cli_env)) == []


def test_the_bench_loads_when_its_paths_are_parsed(cli_env: dict[str, str]) -> None:
    loaded = _modules_after(["bench", "--paths", "batched"], cli_env)
    assert "plexsync_recovery_plugin.dev.bench" in loaded  # the check of --paths asks the bench which paths exist
