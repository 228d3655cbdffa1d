"""The plugin process Stash starts: read Stash's JSON from stdin, run a task or the hook, answer on stdout.

Log lines and progress go to stderr in Stash's protocol (``protocol``); the result is
one JSON object ``{"output": ..., "error": ...}`` on stdout, which Stash shows for a task.
A task's answer also carries ``events``: the ``recovery_completed`` and ``recovery_failed``
events of its runs, in the shapes ``watch --json`` prints (:mod:`..events`); Stash reads only
``output`` and ``error``. A task that fails sets ``error`` and exits 1 (a refused Plex token or
Stash session names the setting to fix, see ``errors``); the hook always exits 0 (it must never fail
the scene update that triggered it). The Stash session cookie and the Plex token are masked
in everything written.

Only the standard library and the package's light modules are imported at module level, so
the hook's "nothing new" answer costs little more than the interpreter's start.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, TextIO

from ..errors import STASH, ConfigurationError, explain, set_door
from ..plexsync_paths import PLEXSYNC_PLUGIN_ID, DataDirSearch, find_plexsync_data_dir
from .hook import run_hook
from .protocol import (
    PluginInput,
    PluginInputError,
    ServerConnection,
    SettingsError,
    StashLogHandler,
    install_stash_logging,
    names_a_hook,
    parse_plugin_input,
    read_plugin_input,
)

__all__ = ["find_data_dir", "main", "not_found"]

logger = logging.getLogger("plexsync_recovery_plugin.stash_plugin")


def find_data_dir(server: ServerConnection, environ: Mapping[str, str]) -> DataDirSearch:
    """PlexSync's data directory: ``$STASH_PLUGIN_DATA``, else ``data`` in PlexSync's plugin folder, and where it looked."""
    return find_plexsync_data_dir(server.plugins_dirs(), environ)


def not_found(search: DataDirSearch) -> str:
    """Why there is no data directory to work on, naming where it was looked for."""
    if search.found is None:
        return (f"PlexSync's data directory was not found (looked in {search.where()}): is {PLEXSYNC_PLUGIN_ID}"
                " installed? (STASH_PLUGIN_DATA in Stash's environment names another folder)")
    return (f"PlexSync's data directory {search.found} does not exist yet: has {PLEXSYNC_PLUGIN_ID} run once?"
            f" (looked in {search.where()})")


def _answer(stdout: TextIO, handler: StashLogHandler, output: str | None, error: str | None,
            events: tuple[dict[str, Any], ...] = ()) -> None:
    payload: dict[str, Any] = {"output": handler.mask(output) if output else output,
                               "error": handler.mask(error) if error else None}
    if events:
        payload["events"] = _masked(handler, list(events))
    stdout.write(json.dumps(payload) + "\n")
    stdout.flush()


def _masked(handler: StashLogHandler, value: Any) -> Any:
    """JSON-like data with every string masked (so the JSON stays valid)."""
    if isinstance(value, str):
        return handler.mask(value)
    if isinstance(value, dict):
        return {_masked(handler, key): _masked(handler, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(handler, item) for item in value]
    return value


def _run_task(mode: str | None, server: ServerConnection, search: DataDirSearch, handler: StashLogHandler) -> Any:
    from dataclasses import replace

    from ..events import EventRelay
    from . import tasks
    from .tasks import TASK_MODES, TaskOutcome, TaskRun

    task = TASK_MODES.get(mode or "")
    if task is None:
        known = ", ".join(sorted(TASK_MODES))
        return TaskOutcome(f"unknown task mode {mode!r} (known: {known})", ok=False)
    data_dir = search.found
    if data_dir is None or not data_dir.is_dir():
        return TaskOutcome(not_found(search), ok=False)
    run = TaskRun(data_dir, handler.progress, lambda: tasks.open_context(data_dir, server, handler.add_secrets))
    events: list[dict[str, Any]] = []
    try:
        with EventRelay(events.append, names=("recovery_completed", "recovery_failed")):
            outcome = task(run)
    finally:
        run.close()
    return replace(outcome, events=tuple(events))


def main(
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one plugin invocation; return the exit code.

    Input of any shape gets one answer on stdout and one error line in the log, never a
    traceback: a hook (input naming ``hookContext``, even unreadable) exits 0, a task 1.
    """
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    env = os.environ if environ is None else environ
    handler = install_stash_logging(stream=stderr)
    set_door(STASH)  # the library's own lines name the Stash settings to fix
    text = ""
    try:
        text = read_plugin_input(stdin)
        plugin_input = parse_plugin_input(text)
    except PluginInputError as error:
        logger.error("PlexSync Recovery: %s", error)
        _answer(stdout, handler, None, str(error))
        return 0 if names_a_hook(text) else 1
    handler.add_secrets(plugin_input.server.session_cookie)
    try:
        return _run(plugin_input, stdout, handler, env)
    except Exception as error:  # one line in Stash's log, never a bare traceback
        logger.error("%s failed: %s: %s", "hook" if plugin_input.is_hook else "task", type(error).__name__, error)
        logger.debug("detail", exc_info=error)
        _answer(stdout, handler, None, f"{type(error).__name__}: {error}")
        return 0 if plugin_input.is_hook else 1


def _run(plugin_input: PluginInput, stdout: TextIO, handler: StashLogHandler, env: Mapping[str, str]) -> int:
    search = find_data_dir(plugin_input.server, env)
    if plugin_input.is_hook:
        if search.found is None or not search.found.is_dir():
            logger.debug("%s: nothing to check", not_found(search))
        summary = run_hook(search.found, plugin_input.server, time.time(), handler.add_secrets)
        _answer(stdout, handler, summary, None)
        return 0
    try:
        outcome = _run_task(plugin_input.mode, plugin_input.server, search, handler)
    except SettingsError as error:
        logger.error("%s", error)
        _answer(stdout, handler, None, str(error))
        return 1
    except ConfigurationError as error:  # a refused token or session: the one model, the setting to fix
        message = explain(error, STASH)
        if not error.logged:
            logger.error("%s", message)
        _answer(stdout, handler, None, message)
        return 1
    if not outcome.ok:
        logger.error("%s", outcome.summary)
        _answer(stdout, handler, None, outcome.summary, outcome.events)
        return 1
    _answer(stdout, handler, outcome.summary, None, outcome.events)
    return 0
