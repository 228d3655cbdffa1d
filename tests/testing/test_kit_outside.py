"""The test kit as a subscriber's author meets it: pytest in a subprocess, the kit found through the
``pytest11`` entry point that setup.cfg declares, a test file that uses only the kit's fixtures.

Time budget: one pytest subprocess, about 2 s.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.distributions import write_distribution

REPO = Path(__file__).resolve().parents[2]

AUTHOR_TESTS = '''
import sys

from plexsync_recovery_plugin import signals

HEARD = []


def on_recovered(sender, *, result, start, end, **kwargs):  # the subscriber under test
    HEARD.append(result.recovered)


def setup(signals_module):
    signals_module.recovery_completed.connect(on_recovered, weak=False)


def test_the_kit_costs_nothing_until_asked():
    assert "graphql" not in sys.modules
    assert "plexsync_recovery_plugin.dev.stash_server" not in sys.modules
    assert "plexsync_recovery_plugin.dev.plex_server" not in sys.modules


def test_my_subscriber_hears_a_recovery(plexsync_make_data_dir, plexsync_make_plugin, plexsync_fire_outage,
                                        plexsync_signals):
    setup(signals)
    try:
        data = plexsync_make_data_dir()
        data.add_entry(7, failed_at=1000.0)
        result = plexsync_fire_outage(plexsync_make_plugin(data), 900.0, 1100.0)
    finally:
        signals.recovery_completed.disconnect(on_recovered)
    assert result.recovered == 1 and HEARD == [1]
    assert sorted(plexsync_signals.names()) == ["outage_ended", "recovery_completed", "recovery_progress"]


def test_the_loopback_servers(plexsync_plex_server, plexsync_stash_server):
    import requests

    assert requests.get(plexsync_plex_server.url + "/identity", timeout=2).status_code == 200
    assert plexsync_stash_server.url.startswith("http://127.0.0.1:")
'''


def _declared_pytest11() -> dict[str, str]:
    """The ``pytest11`` entry points setup.cfg declares (``name = target``)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.entry_points"]["pytest11"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)  # type: ignore[misc]


def test_an_outside_author_uses_the_kit_through_its_entry_point(tmp_path):
    declared = _declared_pytest11()
    assert declared == {"plexsync_recovery": "plexsync_recovery_plugin.testing.pytest_plugin"}
    site = write_distribution(tmp_path / "site", "plexsync-kit-probe", {"pytest11": declared}, {})
    project = tmp_path / "my-subscriber"
    project.mkdir()
    (project / "test_my_subscriber.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    # The author's own run: none of this suite's options, nor the variables of the xdist worker it runs in.
    env = {key: value for key, value in os.environ.items()
           if key != "PYTEST_ADDOPTS" and not key.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    done = subprocess.run(
        # Warnings are errors, as in the author's strict project; another installed plugin's deprecation of
        # its own settings (pytest-asyncio's, in PlexSync's environment) is not the kit's to fail on.
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error",
         "-W", "default::pytest.PytestDeprecationWarning", str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
