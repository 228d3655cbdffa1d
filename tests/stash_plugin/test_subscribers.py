"""The Stash plugin loads the installed subscribers when it recovers."""

from __future__ import annotations

import json
import os

from plexsync_recovery_plugin.subscribers import DISABLE_VARIABLE
from tests.conftest import WINDOW_START
from tests.distributions import write_subscriber_distribution
from tests.stash_plugin.conftest import OUTAGE, write_history


def test_a_recovery_task_is_heard_by_the_installed_subscriber(tmp_path, run_plugin, plugin_env, data_dir, add_entry):
    site = write_subscriber_distribution(tmp_path / "site")
    log = tmp_path / "heard.jsonl"
    plugin_env["PYTHONPATH"] = os.pathsep.join([plugin_env["PYTHONPATH"], str(site)])
    plugin_env["SUBSCRIBER_LOG"] = str(log)
    plugin_env.pop(DISABLE_VARIABLE, None)  # this test's subscribers are meant to load
    write_history(data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)

    run = run_plugin(mode="recover_last_outage")

    assert run.code == 0, run.stderr
    assert [json.loads(line)["recovered"] for line in log.read_text().splitlines()] == [1]
    assert any("subscriber 'broken' (broken_sub:setup) skipped" in text for text in run.texts("e"))
    assert run.non_protocol_lines() == []
