"""The page's actions against a real ``watch --http``: a recovery through them happens exactly once, and without a
configured token there are none."""

from __future__ import annotations

import json
from pathlib import Path

from tests.web.conftest import (
    HTTP_TOKEN,
    LAST_OUTAGE_SCENES,
    PENDING_SCENES,
    STASH_SCENES,
    Servers,
    WebDaemon,
    build_world,
    daemon_env,
    fetch,
    metric_samples,
    queued_scenes,
    settle,
)


def test_recover_last_outage_with_the_token_recovers_it_once(tmp_path: Path, web_servers: Servers) -> None:
    world = build_world(tmp_path)
    daemon = WebDaemon(world.data_dir, daemon_env(web_servers), "--http-token", HTTP_TOKEN)
    try:
        settle(daemon.url)
        bearer = {"Authorization": "Bearer " + HTTP_TOKEN}
        first = fetch(daemon.url + "actions/recover", "POST", body="", headers=bearer)
        second = fetch(daemon.url + "actions/recover", "POST", body="", headers=bearer)
        metrics = metric_samples(fetch(daemon.url + "metrics").text)
        page = fetch(daemon.url).text
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert first.status == 200 and first.headers["content-type"] == "application/json"
    done = json.loads(first.text)
    assert done["action"] == "recover" and done["ok"] is True
    [run] = done["runs"]
    recoverable = [scene for scene in LAST_OUTAGE_SCENES if scene in STASH_SCENES]
    assert run["result"]["recovered_scene_ids"] == recoverable
    assert run["result"]["skipped_scene_missing"] == 1
    again = json.loads(second.text)["runs"][0]["result"]
    assert again["recovered"] == 0 and again["skipped_already_queued"] == len(recoverable)
    # Each scene is queued once: by the daemon's retry at start, then by the first action; never twice.
    assert queued_scenes(world.data_dir) == sorted([*PENDING_SCENES, *recoverable])
    assert metrics[("plexsync_recovery_recovered_total", ())] == len(PENDING_SCENES) + len(recoverable)
    assert metrics[("plexsync_recovery_runs_total", (("result", "completed"),))] == 3
    assert metrics[("plexsync_recovery_skipped_total", (("reason", "already_queued"),))] == len(recoverable)
    assert "Last action (Recover last outage" in page


def test_without_a_token_every_action_is_forbidden(tmp_path: Path, web_servers: Servers) -> None:
    world = build_world(tmp_path)
    daemon = WebDaemon(world.data_dir, daemon_env(web_servers))
    try:
        settle(daemon.url)
        before = queued_scenes(world.data_dir)
        answers = [fetch(daemon.url + f"actions/{name}", "POST", body="",
                         headers={"Authorization": "Bearer " + HTTP_TOKEN}) for name in ("preview", "recover", "retry")]
        login = fetch(daemon.url + "login", "POST", body="token=" + HTTP_TOKEN)
        page = fetch(daemon.url).text
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert [answer.status for answer in answers] == [403, 403, 403] and login.status == 403
    assert "actions are off" in answers[0].text
    assert "Actions are off" in page and "<form" not in page
    assert queued_scenes(world.data_dir) == before
