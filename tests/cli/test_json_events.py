"""``watch --json``: one JSON object per line on stdout for each outage and recovery, nothing else;
errors under ``--json`` are JSON objects too.

Time budget: the daemon test runs about 2 s (probe interval 0.2 s).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.events import EventRelay, describe, to_event
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from tests.cli.conftest import REPO
from tests.conftest import wait_until

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class JsonDaemon:
    """``watch --json`` in a subprocess; stdout and stderr read line by line by two threads."""

    def __init__(self, cli_env, data_dir, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--json", "--data-dir", str(data_dir),
             "--interval", "0.2", *map(str, flags)],
            env=cli_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line)

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.out)]

    def wait_for_event(self, name: str, timeout: float = 10.0) -> None:
        if not wait_until(lambda: any(f'"event": "{name}"' in line for line in self.out), timeout=timeout):
            self.stop()
            pytest.fail(f"no {name} event; stdout {self.out!r}, stderr {''.join(self.err)!r}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def test_watch_json_writes_one_event_per_line_for_an_outage_and_its_recovery(cli_env, data_dir, dlq, add_entry):
    with PlexTestServer(token="json-watch-token-1") as plex, StashTestServer(scenes=[1]) as stash:
        daemon = JsonDaemon(cli_env, data_dir, "--plex-url", plex.url, "--plex-token", plex.token,
                            "--stash-url", stash.url, "--fail-threshold", "1", "--recover-threshold", "1")
        assert wait_until(lambda: "Plex is up" in "".join(daemon.err), timeout=10), daemon.err
        plex.set_mode("down")
        daemon.wait_for_event("outage_started")
        add_entry(1, failed_at=time.time())  # dead-lettered during the outage
        add_entry(2, failed_at=time.time())  # its scene is gone from Stash
        plex.set_mode("up")
        daemon.wait_for_event("recovery_completed")
        code = daemon.stop()
    assert code == 0
    events = daemon.events()  # every stdout line is one JSON object: json.loads fails otherwise
    assert [event["event"] for event in events] == [
        "outage_started", "outage_ended", "recovery_progress", "recovery_completed"]
    started, ended, progress, completed = events
    assert (progress["done"], progress["total"]) == (2, 2)  # one chunk: both entries decided
    assert progress["counts"]["recovered"] == 1 and progress["counts"]["skipped_scene_missing"] == 1
    for event in events:
        assert ISO_UTC.match(event["at"]) and ISO_UTC.match(event["start"])
    assert ended["start"] == started["start"]
    # The run covers the outage, widened to whole seconds (the DLQ's resolution).
    assert completed["start"] <= ended["start"] and completed["end"] >= ended["end"]
    assert ISO_UTC.match(ended["end"]) and ended["duration_seconds"] > 0
    result = completed["result"]
    assert (result["total_dlq_entries"], result["recovered"], result["skipped_scene_missing"]) == (2, 1, 1)
    assert result["recovered_scene_ids"] == [1] and result["deferred"] is False
    assert "json-watch-token-1" not in "".join(daemon.out + daemon.err)
    assert "outage started" in "".join(daemon.err)  # the log stays on stderr


def test_recovery_failed_is_an_event_with_the_error(plugin):
    seen = []
    with EventRelay(seen.append):
        plugin.recover(20.0, 10.0)  # start after end
    [event] = seen
    assert event["event"] == "recovery_failed" and event["error_type"] == "ValueError"
    assert (event["start"], event["end"]) == ("1970-01-01T00:00:20Z", "1970-01-01T00:00:10Z")
    assert "start" in event["error"] and "Recovery of outage" in describe(event)


def test_an_event_time_that_is_not_a_number_is_shown_as_text():
    event = to_event("recovery_failed", {"start": "yesterday", "end": None, "error": ValueError("bad")}, now=0)
    assert (event["at"], event["start"], event["end"]) == ("1970-01-01T00:00:00Z", "'yesterday'", None)


def test_a_usage_error_under_json_is_a_json_object(capsys, data_dir):
    code = main(["recover", "--json", "--data-dir", str(data_dir), "--start", "yesterday", "--end", "today"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    [line] = captured.err.splitlines()
    assert "'yesterday'" in json.loads(line)["error"]


def test_a_parse_error_under_json_is_a_json_object(run_cli):
    proc = run_cli("dlq", "--json", "--no-such-flag")
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "unrecognized arguments: --no-such-flag" in json.loads(line)["error"]


def test_watch_json_names_the_outage_window_and_the_window_searched_alike_in_every_event(
        cli_env, data_dir, dlq, add_entry):
    with PlexTestServer(token="json-watch-token-2") as plex, StashTestServer(scenes=[1]) as stash:
        daemon = JsonDaemon(cli_env, data_dir, "--plex-url", plex.url, "--plex-token", plex.token,
                            "--stash-url", stash.url, "--fail-threshold", "1", "--recover-threshold", "1")
        assert wait_until(lambda: "Plex is up" in "".join(daemon.err), timeout=10), daemon.err
        plex.set_mode("down")
        daemon.wait_for_event("outage_started")
        add_entry(1, failed_at=time.time())
        plex.set_mode("up")
        daemon.wait_for_event("recovery_completed")
        assert daemon.stop() == 0
    started, ended, progress, completed = daemon.events()
    # The outage's own window, as received, in every event of it; the run's window named "searched".
    for event in (progress, completed):
        assert (event["start"], event["end"]) == (ended["start"], ended["end"])
        searched = event["searched"]
        assert ISO_UTC.match(searched["start"]) and ISO_UTC.match(searched["end"])
        assert searched["start"] <= event["start"] and searched["end"] >= event["end"]
    assert progress["searched"] == completed["searched"]
    latency = completed["result"]["plex_latency_ms"]
    assert latency == round(latency, 1)


def test_recover_json_uses_the_events_spelling(run_cli, data_dir, add_entry):
    add_entry(1, failed_at=20.0)
    with PlexTestServer(token="json-recover-token") as plex, StashTestServer(scenes=[1]) as stash:
        flags = ["--data-dir", data_dir, "--json", "--plex-url", plex.url, "--plex-token", plex.token,
                 "--stash-url", stash.url, "--start", "10.4", "--end", "30.6"]
        real = run_cli("recover", *flags)
        dry = run_cli("recover", "--dry-run", *flags)
    assert real.returncode == 0 and dry.returncode == 0, real.stderr + dry.stderr
    for report in (json.loads(real.stdout), json.loads(dry.stdout)):
        assert (report["start"], report["end"]) == ("1970-01-01T00:00:10Z", "1970-01-01T00:00:30Z")
        assert report["searched"] == {"start": "1970-01-01T00:00:10Z", "end": "1970-01-01T00:00:31Z"}
        assert report["plex_latency_ms"] == round(report["plex_latency_ms"], 1)
    assert json.loads(real.stdout)["pending_windows"] == []
