"""Standard input of any shape, run as Stash runs the plugin: one answer, one log line, no traceback.

A hook (input that names ``hookContext``) always exits 0, so the scene update that started
it never fails; a task whose input cannot be read exits 1 with ``error`` set.
"""

from __future__ import annotations

import json

import pytest

from tests.stash_plugin.conftest import plugin_input

DEPTH = 200_000
CAP = 1 << 20  # stash_input.MAX_INPUT_CHARS
HOOK = {"id": 3, "type": "Scene.Update.Post", "input": {"id": "3"}}


def _assert_one_line_answer(run, *, code, named):
    assert run.code == code, run.stderr
    assert run.non_protocol_lines() == [], run.stderr  # no traceback
    answer = run.answer
    assert answer["output"] is None and named in answer["error"] and "\n" not in answer["error"]
    [error] = run.texts("e")
    assert named in error


def test_a_hook_payload_nested_200000_deep_gets_an_answer_and_exits_0(run_plugin):
    nested = "[" * DEPTH + "]" * DEPTH
    run = run_plugin(payload='{"server_connection": {}, "args": {"hookContext": ' + nested + "}}")
    _assert_one_line_answer(run, code=0, named="nested too deeply")


def test_a_task_payload_nested_deep_fails_the_task_in_one_line(run_plugin):
    nested = "[" * DEPTH + "]" * DEPTH
    run = run_plugin(payload='{"server_connection": {}, "args": {"mode": ' + nested + "}}")
    _assert_one_line_answer(run, code=1, named="nested too deeply")


def test_input_longer_than_the_cap_is_refused_unread(run_plugin):
    padding = "x" * CAP
    run = run_plugin(payload=json.dumps({"server_connection": {}, "args": {"hookContext": HOOK, "pad": padding}}))
    _assert_one_line_answer(run, code=0, named="longer than")


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"server_connection": "localhost", "args": {"hookContext": HOOK}}, "server_connection"),
        ({"server_connection": [], "args": {"hookContext": HOOK}}, "server_connection"),
        ({"server_connection": {"Port": True}, "args": {"hookContext": HOOK}}, "Port"),
        ({"server_connection": {"Port": 10**30}, "args": {"hookContext": HOOK}}, "Port"),
        ({"server_connection": {"Dir": "/tmp/a\x00b"}, "args": {"hookContext": HOOK}}, "Dir"),
    ],
)
def test_a_hook_with_a_broken_server_connection_answers_and_exits_0(run_plugin, payload, named):
    _assert_one_line_answer(run_plugin(payload=json.dumps(payload)), code=0, named=named)


@pytest.mark.parametrize("hook_context", ["Scene.Update.Post", None, [1, {"type": 2}], 7])
def test_a_hook_context_of_any_shape_is_answered_as_a_hook(run_plugin, stash_server, plugins_dir, hook_context):
    payload = plugin_input(stash_server, plugins_dir)
    payload["args"] = {"hookContext": hook_context}
    run = run_plugin(payload=json.dumps(payload))
    assert run.non_protocol_lines() == [], run.stderr
    assert run.code == 0 and run.answer["error"] is None and run.answer["output"], run.stderr
