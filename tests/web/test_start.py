"""Starting ``watch --http``: each refusal is one line and exit 2 (never showing the token); and ``/healthz`` answers
503 when the loop does not tick."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plexsync_recovery_plugin.cli import main
from plexsync_recovery_plugin.worker.watch import Heartbeat, WatchDaemon, WatchSettings
from tests.cli.conftest import assert_one_error_line
from tests.web.conftest import REPO, World, build_world, daemon_env, fetch, leaked_secrets

SHORT_TOKEN = "Qw7Rt2Yp9Kx4"  # 12 characters


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def _watch(world: World, *flags: str) -> list[str]:
    return ["watch", "--data-dir", str(world.data_dir), "--no-subscribers", "--plex-url", "http://127.0.0.1:9",
            "--stash-url", "http://127.0.0.1:9", *flags]


@pytest.mark.parametrize("flags, env, says", [
    (["--http", "127.0.0.1:0", "--http-token", SHORT_TOKEN], {}, "12 characters long"),
    (["--http", "127.0.0.1:0"], {"PLEXSYNC_RECOVERY_HTTP_TOKEN": SHORT_TOKEN}, "PLEXSYNC_RECOVERY_HTTP_TOKEN"),
    (["--http-token", "Vb7Kx2Qm9Tz4Wr6Np3Hd"], {}, "add --http HOST:PORT"),
    (["--http", "localhost"], {}, "expected HOST:PORT"),
    (["--http", "127.0.0.1:70000"], {}, "'127.0.0.1:70000'"),
    ([], {"PLEXSYNC_RECOVERY_HTTP": "[::1]8080"}, "PLEXSYNC_RECOVERY_HTTP"),
])
def test_a_bad_setting_stops_the_start_in_one_line(world, capsys, monkeypatch, flags, env, says):
    for name in ("PLEXSYNC_RECOVERY_HTTP", "PLEXSYNC_RECOVERY_HTTP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(_watch(world, *flags)) == 2
    stderr = capsys.readouterr().err
    assert_one_error_line(stderr, says)
    assert SHORT_TOKEN[:8] not in stderr and SHORT_TOKEN[-8:] not in stderr


def test_a_port_in_use_is_one_line(world, capsys, monkeypatch):
    monkeypatch.delenv("PLEXSYNC_RECOVERY_HTTP_TOKEN", raising=False)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(_watch(world, "--http", f"127.0.0.1:{port}")) == 2
    finally:
        taken.close()
    assert_one_error_line(capsys.readouterr().err, f"--http 127.0.0.1:{port}: cannot listen there")


def test_without_prometheus_client_http_names_the_extra(world, tmp_path, web_servers):
    blocked = tmp_path / "no-prometheus" / "prometheus_client"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'prometheus_client'\", name='prometheus_client')\n"
    )
    env = daemon_env(web_servers)
    env["PYTHONPATH"] = os.pathsep.join([str(blocked.parent), str(REPO)])
    proc = subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", "watch", "--data-dir", str(world.data_dir),
                           "--http", "127.0.0.1:0"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "'web' extra", "pip install 'plexsync-recovery-plugin[web]'")
    assert leaked_secrets(proc.stderr) == []


def test_healthz_is_503_until_the_loop_ticks_and_when_it_stalls(world):
    from plexsync_recovery_plugin.web.server import StatusServer

    daemon = WatchDaemon(None, lambda: None, WatchSettings(interval=1.0), data_dir=world.data_dir)  # type: ignore[arg-type,return-value]
    with StatusServer(daemon, "127.0.0.1", 0) as server:
        waiting = fetch(server.url + "healthz")
        daemon.heartbeat = Heartbeat(time.monotonic() - 3.5, time.time() - 3.5)
        stalled = fetch(server.url + "healthz")
        daemon.heartbeat = Heartbeat(time.monotonic(), time.time())
        ticking = fetch(server.url + "healthz")
    assert (waiting.status, waiting.text.strip()) == (503, "not ticking yet")
    assert stalled.status == 503 and stalled.text.startswith("stalled: last tick 3.5 s ago")
    assert ticking.status == 200 and ticking.text.startswith("ok: ")
