"""Subscribers in the command line: ``recover`` and ``watch`` load them, ``--no-subscribers`` does not,
``subscribers`` lists them. The distribution is a throwaway one on the subprocess's PYTHONPATH."""

from __future__ import annotations

import json
import os
import signal
from importlib.metadata import entry_points

import pytest

from plexsync_recovery_plugin.subscribers import DISABLE_VARIABLE, ENTRY_POINT_GROUP
from tests.cli.conftest import Daemon, server_flags
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.distributions import write_subscriber_distribution

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]


@pytest.fixture
def with_subscribers(tmp_path, cli_env):
    """The CLI's environment with the test distribution installed, and where ``heard`` writes."""
    site = write_subscriber_distribution(tmp_path / "site")
    log = tmp_path / "heard.jsonl"
    cli_env["PYTHONPATH"] = os.pathsep.join([cli_env["PYTHONPATH"], str(site)])
    cli_env["SUBSCRIBER_LOG"] = str(log)
    cli_env.pop(DISABLE_VARIABLE, None)  # this test's subscribers are meant to load
    return log


def _installed_outside() -> set[str]:
    """Subscriber names other packages of this environment declare (read without the code under test)."""
    return {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}


def _heard(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_recover_loads_subscribers_and_goes_on_past_the_broken_ones(
    run_cli, with_subscribers, data_dir, add_entry, plex_server, stash_server
):
    add_entry(1)
    proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, *server_flags(plex_server, stash_server))
    assert proc.returncode == 0, proc.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]
    assert [entry["recovered"] for entry in _heard(with_subscribers)] == [1]
    assert "subscriber 'broken' (broken_sub:setup) skipped: ModuleNotFoundError" in proc.stderr
    assert "subscriber 'raising' (raising_sub:setup) skipped: RuntimeError: setup refuses" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_subscribers_loads_none(run_cli, with_subscribers, data_dir, add_entry, plex_server, stash_server):
    add_entry(1)
    proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--no-subscribers",
                   *server_flags(plex_server, stash_server))
    assert proc.returncode == 0, proc.stderr
    assert _heard(with_subscribers) == [] and "subscriber" not in proc.stderr


def test_watch_loads_subscribers(cli_env, with_subscribers, data_dir, plex_server, stash_server):
    daemon = Daemon(cli_env, data_dir, *server_flags(plex_server, stash_server))
    daemon.wait_for("subscriber 'heard' (heard_sub:setup) connected")
    assert daemon.stop(signal.SIGTERM) == 0
    assert "subscriber 'raising' (raising_sub:setup) skipped" in daemon.stderr


def test_subscribers_lists_each_with_its_status(run_cli, with_subscribers):
    proc = run_cli("subscribers")
    assert proc.returncode == 1  # one does not load
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert set(rows) == {"broken", "heard", "raising"} | _installed_outside()
    assert rows["heard"].endswith("ok") and "plexsync-test-subscribers 1.0" in rows["heard"]
    assert "fails: ModuleNotFoundError" in rows["broken"]
    listed = json.loads(run_cli("subscribers", "--json").stdout)
    ours = [(item["name"], item["error"] is None) for item in listed if item["name"] not in _installed_outside()]
    assert ours == [("broken", False), ("heard", True), ("raising", True)]


def test_subscribers_with_none_installed(run_cli):
    """None of this suite's; whatever else the environment holds is listed, nothing more."""
    proc = run_cli("subscribers", "--json")
    assert [item["name"] for item in json.loads(proc.stdout)] == sorted(_installed_outside())
    if not _installed_outside():
        text = run_cli("subscribers")
        assert text.returncode == 0 and "No subscriber is installed" in text.stdout
