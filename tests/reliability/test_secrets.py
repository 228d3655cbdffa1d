"""Secrets: the Plex token and the Stash API key appear in no log line, error or file.

Recoveries run against the loopback servers through the real clients (``PlexConnection``
and ``StashConnection`` holding the secrets), in good and failing conditions (wrong Stash
key, wrong Plex token, Plex down or starting, Stash down or locked), with every logger at
DEBUG. Then the captured log text (tracebacks included), every ``recovery_failed`` error
(message, repr and whole cause chain) and every byte of every file under the data dir are
searched for each secret.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any, Iterator

import plexapi.server  # noqa: F401  (imported now: its import resets the "plexapi" log level)
import pytest

from plexsync_recovery_plugin import PlexConnection, RecoveryPlugin, StashConnection, outage_ended
from plexsync_recovery_plugin.outages import DetectedOutages
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer
from plexsync_recovery_plugin.worker.watch import WatchDaemon, WatchSettings
from tests.conftest import WINDOW_END, WINDOW_START, drain

PLEX_TOKEN = "plexTOKEN-s3cr3t-4f2a9c"
WRONG_PLEX_TOKEN = "plexTOKEN-wrong-77e1d0"
STASH_KEY = "stashKEY-s3cr3t-b81c55"
WRONG_STASH_KEY = "stashKEY-wrong-0d9e3a"
SECRETS = (PLEX_TOKEN, WRONG_PLEX_TOKEN, STASH_KEY, WRONG_STASH_KEY)


@pytest.fixture
def servers() -> Iterator[tuple[PlexTestServer, StashTestServer]]:
    with PlexTestServer(token=PLEX_TOKEN) as plex, StashTestServer(api_key=STASH_KEY, scenes=range(1, 10)) as stash:
        yield plex, stash


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("plexapi", "urllib3", "requests", "StashLogger", "plexsync_recovery_plugin"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _texts_of(error: BaseException) -> list[str]:
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


def _assert_no_secret_anywhere(caplog: pytest.LogCaptureFixture, failures: list[Any], data_dir: Path) -> None:
    texts = [caplog.text]
    for record in caplog.records:
        texts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            texts.extend(_texts_of(record.exc_info[1]))
    for call in failures:
        texts.extend(_texts_of(call["error"]))
    for secret in SECRETS:
        assert not any(secret in text for text in texts), f"{secret} leaked into a log line or an error"
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert files, "the recovery wrote nothing at all?"
    for path in files:
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} leaked into {path}"


def _scenario(dlq, queue, data_dir, plex_conn, stash_conn, completed) -> Any:
    with RecoveryPlugin(dlq, queue, stash_conn, plex_conn, data_dir):
        outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
    return completed.calls[-1]["result"] if completed.calls else None


def test_no_secret_leaks_in_any_condition(
    servers, dlq, queue, data_dir, add_entry, completed, failed, everything_logged
):
    plex, stash = servers
    for scene_id in (1, 2, 3):
        add_entry(scene_id, failed_at=WINDOW_START + scene_id)
    plex_conn = PlexConnection(plex.url, PLEX_TOKEN, timeout=5.0)
    stash_conn = StashConnection(stash.url, STASH_KEY, timeout=5.0)
    wrong_stash = StashConnection(stash.url, WRONG_STASH_KEY, timeout=5.0)
    wrong_plex = PlexConnection(plex.url, WRONG_PLEX_TOKEN, timeout=5.0)
    outcomes = {}
    try:
        assert _scenario(dlq, queue, data_dir, plex_conn, wrong_stash, completed) is None
        outcomes["wrong stash key"] = failed.calls[-1]["error"].credential  # a configuration error: the run stops
        assert _scenario(dlq, queue, data_dir, wrong_plex, stash_conn, completed) is None
        outcomes["wrong plex token"] = failed.calls[-1]["error"].credential
        plex.set_mode("starting")
        outcomes["plex starting"] = _scenario(dlq, queue, data_dir, plex_conn, stash_conn, completed).skipped_plex_down
        plex.set_mode("down")
        outcomes["plex down"] = _scenario(dlq, queue, data_dir, plex_conn, stash_conn, completed).skipped_plex_down
        plex.set_mode("up")
        stash.set_mode("locked")
        outcomes["stash locked"] = _scenario(dlq, queue, data_dir, plex_conn, stash_conn, completed).skipped_stash_error
        stash.set_mode("down")
        outcomes["stash down"] = _scenario(dlq, queue, data_dir, plex_conn, stash_conn, completed).skipped_stash_error
        stash.set_mode("up")
        # The watch daemon's own log lines, through an outage it records, then the retry.
        daemon_plugin = RecoveryPlugin(dlq, queue, stash_conn, plex_conn, data_dir)
        clock = iter(float(WINDOW_END + second) for second in range(100))
        settings = WatchSettings(fail_threshold=1, recover_threshold=1)
        daemon = WatchDaemon(plex_conn, daemon_plugin, settings, clock=lambda: next(clock))
        with daemon_plugin:
            plex.set_mode("down")
            daemon.tick()
            plex.set_mode("up")
            daemon.tick()
        outcomes["recovered at last"] = completed.calls[-1]["result"].recovered
    finally:
        for connection in (plex_conn, stash_conn, wrong_stash, wrong_plex):
            connection.close()

    assert outcomes == {
        "wrong stash key": "stash_api_key",
        "wrong plex token": "plex_token",
        "plex starting": 3,
        "plex down": 3,
        "stash locked": 3,
        "stash down": 3,
        "recovered at last": 3,
    }
    assert sorted(job["scene_id"] for job in drain(data_dir)) == [1, 2, 3]
    assert DetectedOutages(data_dir).outages()  # the daemon recorded its outage in the plugin's state too
    heard = {record.name for record in everything_logged.records}
    assert {"plexapi", "urllib3.connectionpool", "plexsync_recovery_plugin.stashapi"} <= heard  # the clients' DEBUG too
    _assert_no_secret_anywhere(everything_logged, failed.calls, data_dir)


def test_no_secret_in_a_failed_run(servers, dlq, queue, data_dir, add_entry, failed, everything_logged):
    """A run that fails outright (the DLQ vanished) reports its error without any secret."""
    plex, stash = servers
    add_entry(1)
    plex_conn = PlexConnection(plex.url, PLEX_TOKEN, timeout=5.0)
    stash_conn = StashConnection(stash.url, STASH_KEY, timeout=5.0)
    try:
        (data_dir / "dlq.db").unlink()
        with RecoveryPlugin(dlq, queue, stash_conn, plex_conn, data_dir):
            outage_ended.send("tracker", start=WINDOW_START, end=WINDOW_END)
            outage_ended.send("tracker", start="bad", end=WINDOW_END)
    finally:
        plex_conn.close()
        stash_conn.close()
    assert len(failed.calls) == 2
    _assert_no_secret_anywhere(everything_logged, failed.calls, data_dir)


def test_the_clients_never_show_their_secret():
    plex, stash = PlexConnection("http://127.0.0.1:1", PLEX_TOKEN), StashConnection("http://127.0.0.1:1", STASH_KEY)
    for text in (repr(plex), repr(stash), str(vars(plex).get("baseurl")), stash.url):
        assert PLEX_TOKEN not in text and STASH_KEY not in text
