"""``--notify``: Apprise sends one short message per outage and per recovery to a loopback ``json://`` endpoint.

The URLs are secrets (masked everywhere); a notification that fails is logged once and never
holds up a recovery; without Apprise, ``--notify`` is one line naming the extra (exit 2).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings

import pytest

from plexsync_recovery_plugin.engine import RecoveryResult
from plexsync_recovery_plugin.events import to_event
from plexsync_recovery_plugin.notify import Notifier, register_url_secrets
from plexsync_recovery_plugin.redaction import REDACTOR
from tests.cli.conftest import Daemon, assert_one_error_line, server_flags
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.notify_endpoint import NotifyEndpoint

with warnings.catch_warnings():  # Apprise loads every service module on first use; some import deprecated ones
    warnings.simplefilter("ignore", DeprecationWarning)
    apprise = pytest.importorskip("apprise")
    apprise.Apprise.instantiate("json://127.0.0.1/x")

WINDOW = ["--start", str(WINDOW_START), "--end", str(WINDOW_END)]
PASSWORD = "n0tify-pa55word-4242"


def test_recover_notifies_once_with_the_counts_and_hides_the_url(
    run_cli, data_dir, add_entry, plex_server, stash_server
):
    add_entry(1)
    add_entry(9)  # Stash has no scene 9
    with NotifyEndpoint() as endpoint, NotifyEndpoint(status=500) as refusing:
        good, bad = endpoint.url(auth=f"user:{PASSWORD}"), refusing.url(path="down", auth=f"user:{PASSWORD}")
        proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--notify", good, "--notify", bad, "-v",
                       *server_flags(plex_server, stash_server))
        [message] = endpoint.wait_for(1)
    assert proc.returncode == 0, proc.stderr
    assert [job["scene_id"] for job in drain(data_dir)] == [1]
    assert (message["title"], message["type"]) == ("PlexSync recovery", "success")
    assert "recovered 1 of 2 DLQ entries" in message["message"] and "scene missing 1" in message["message"]
    assert "2026-02-15T19:00:00Z" in message["message"]
    assert len(refusing.messages) == 1  # it was tried once, refused
    failures = [line for line in proc.stderr.splitlines() if "notification to" in line]
    assert len(failures) == 1
    assert f"notification to #2 json://user:****@127.0.0.1:{refusing.port} was not sent" in failures[0]
    assert "error=500" in failures[0]
    assert PASSWORD not in proc.stdout + proc.stderr


def test_the_environment_variable_gives_the_urls(run_cli, data_dir, add_entry, plex_server, stash_server):
    add_entry(1)
    with NotifyEndpoint() as first, NotifyEndpoint() as second:
        urls = f" {first.url()} ,{second.url()}\n"
        proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, *server_flags(plex_server, stash_server),
                       env={"PLEXSYNC_RECOVERY_NOTIFY": urls})
        assert proc.returncode == 0, proc.stderr
        assert len(first.wait_for(1)) == 1 and len(second.wait_for(1)) == 1


def test_watch_notifies_the_outage_and_its_recovery(cli_env, data_dir, dlq, plex_server, stash_server):
    with NotifyEndpoint() as endpoint:
        daemon = Daemon(cli_env, data_dir, *server_flags(plex_server, stash_server), "--notify", endpoint.url(),
                        "--fail-threshold", "1", "--recover-threshold", "1")
        daemon.wait_for("Plex is up")
        plex_server.set_mode("down")
        endpoint.wait_for(1)
        plex_server.set_mode("up")
        messages = endpoint.wait_for(2)
        assert daemon.stop(signal.SIGTERM) == 0
    assert [message["type"] for message in messages] == ["warning", "success"]
    assert messages[0]["message"].startswith("Plex outage started at ")
    assert "recovered 0 of 0 DLQ entries" in messages[1]["message"]


def test_a_hanging_service_never_holds_up_the_sender_and_is_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="plexsync_recovery_plugin")
    result = RecoveryResult(total_dlq_entries=3, recovered=3)
    with NotifyEndpoint(hang=True) as endpoint:
        notifier = Notifier([endpoint.url()], send_timeout=0.3, close_timeout=5)
        started = time.monotonic()
        notifier(to_event("recovery_completed", {"result": result, "start": 1.0, "end": 2.0}))
        notifier(to_event("outage_ended", {"start": 1.0, "end": 2.0}))  # not a notified event
        assert time.monotonic() - started < 0.2
        notifier.close()
        assert time.monotonic() - started < 3
        assert len(endpoint.messages) == 1
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("plexsync_recovery_plugin")]
    assert len(ours) == 1 and ours[0].startswith(f"notification to #1 json://127.0.0.1:{endpoint.port} was not sent")
    assert "error" in ours[0]  # why, in Apprise's words


def test_the_secret_parts_of_a_url_are_masked():
    token = "hooktoken-zq8x7c6v5b4n3m2"
    url = f"discord://9876543210123/{token}"
    register_url_secrets(url, apprise.Apprise.instantiate(url))
    assert REDACTOR(f"posting to webhook {token} failed") == "posting to webhook *** failed"
    assert REDACTOR(f"url {url}") == "url ***"


def test_an_unknown_scheme_is_one_clear_line(run_cli, data_dir):
    proc = run_cli("recover", *WINDOW, "--data-dir", data_dir, "--notify", "nosuchscheme://abc")
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "'nosuchscheme://'")


def test_without_apprise_notify_names_the_extra(run_cli, tmp_path, data_dir, cli_env):
    blocked = tmp_path / "no-apprise" / "apprise"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError(\"No module named 'apprise'\")\n")
    path = os.pathsep.join([str(blocked.parent), cli_env["PYTHONPATH"]])
    proc = run_cli("watch", "--data-dir", data_dir, "--notify", "json://127.0.0.1:9/x", env={"PYTHONPATH": path})
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "pip install 'plexsync-recovery-plugin[notify]'")
    assert len(proc.stderr.splitlines()) == 1
