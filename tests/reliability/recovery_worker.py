"""A recovery run in a process of its own, for the crash test to kill at any moment.

Usage: ``python recovery_worker.py DATA_DIR START END CHUNK STASH [PATH]``, where ``STASH`` is
a StashTestServer URL (asked through ``StashConnection``, batched) or ``plain:<ids>`` for an
in-process Stash missing the comma-separated scene ids, and ``PATH`` is ``batched`` (the
plugin's collaborators, the default) or ``per-job`` (the seed's: claim, enqueue, mark done). It opens the real DLQ and the real
``SQLiteAckQueue``, prints ``started`` once everything is imported and opened, runs ``recover_outage_jobs`` with
``RECOVERY_CHUNK = CHUNK`` so that a run is many small transactions, and prints the counts as
JSON when it finishes.

Kill points are reached by synchronization, never by a timer: with ``KILL_AT=N`` in the
environment, the worker stops just before the ``N``-th write statement (``BEGIN``, ``INSERT``,
``UPDATE``, ``DELETE`` or ``COMMIT``) that any connection sends to PlexSync's queue file,
prints ``paused <N> <statement>`` and waits there for the test's SIGKILL. A run that ends
before its ``N``-th write prints its counts as usual. ``COUNT_WRITES=1`` adds the number of
write statements the run sent to the counts.

The crash tests start dozens of runs only to kill them; a fresh Python for each paid about
0.25 s of start-up and imports. :func:`start` runs ``main`` in a process forked from a
multiprocessing forkserver that imported this module (and the plugin) once: each run is still
a process of its own, killed with a real SIGKILL, but it starts in milliseconds. Its lines come
through a pipe instead of stdout.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plexsync_recovery_plugin import StashConnection  # noqa: E402
from plexsync_recovery_plugin import engine
from plexsync_recovery_plugin.engine import default_collaborators
from plexsync_recovery_plugin.sync_queue import dlq_recovery  # noqa: E402
from plexsync_recovery_plugin.sync_queue.dlq import DeadLetterQueue  # noqa: E402
from plexsync_recovery_plugin.sync_queue.dlq import DlqWindow
from plexsync_recovery_plugin.sync_queue.operations import open_queue  # noqa: E402
from tests.fakes import HealthyPlex, PlainStash  # noqa: E402

_WRITES = ("BEGIN", "INSERT", "UPDATE", "DELETE", "COMMIT")
_written = [0]


def _watch_queue_writes(kill_at: int | None) -> None:
    """Count (and, at ``kill_at``, stop before) every write statement sent to the queue file."""
    connect = sqlite3.connect

    def on_statement(sql: str) -> None:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if verb not in _WRITES:
            return
        _written[0] += 1
        if _written[0] == kill_at:
            sys.stdout.write(f"paused {kill_at} {verb}\n")
            sys.stdout.flush()
            threading.Event().wait()  # the test kills the process here, before the statement runs

    def traced_connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(database, *args, **kwargs)
        if "data.db" in str(database):  # PlexSync's queue file, opened by the plugin or persist-queue
            conn.set_trace_callback(on_statement)
        return conn

    sqlite3.connect = traced_connect  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    data_dir, start, end, chunk, stash_spec = argv[1], float(argv[2]), float(argv[3]), int(argv[4]), argv[5]
    engine.RECOVERY_CHUNK = chunk
    kill_at = os.environ.get("KILL_AT")
    _watch_queue_writes(int(kill_at) if kill_at else None)
    if stash_spec.startswith("plain:"):
        stash = PlainStash({int(text) for text in stash_spec[len("plain:") :].split(",") if text})
    else:
        stash = StashConnection(stash_spec)
        stash.client()  # connect before the kill timer starts
    dlq = DeadLetterQueue(data_dir)
    queue = open_queue(data_dir)
    entries = DlqWindow(dlq, start, end, dlq_recovery.get_error_types_for_recovery())
    sys.stdout.write("started\n")
    sys.stdout.flush()
    per_job = len(argv) > 6 and argv[6] == "per-job"
    collaborators = None if per_job else default_collaborators(queue.path, queue, stash)
    result = dlq_recovery.recover_outage_jobs(entries, queue, stash, HealthyPlex(), data_dir, collaborators=collaborators)
    queue.close()
    counts = {"recovered": result.recovered, "total": result.total_dlq_entries}
    if os.environ.get("COUNT_WRITES"):
        counts["writes"] = _written[0]
    sys.stdout.write(json.dumps(counts) + "\n")
    return 0


# -- runs forked from a prepared Python ----------------------------------------------------------

_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload([__name__])


class _PipeLines:
    """``sys.stdout`` of a forked run: each complete line goes to the test through the pipe."""

    def __init__(self, connection: Connection) -> None:
        self._connection, self._pending = connection, ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._connection.send(line + "\n")
        return len(text)

    def flush(self) -> None:
        pass


def _forked_main(argv: list[str], env: dict[str, str], connection: Connection) -> None:
    os.environ.update(env)
    sys.stdout = _PipeLines(connection)  # type: ignore[assignment]
    try:
        code = main(argv)
    except BaseException:
        connection.send("error " + traceback.format_exc())
        code = 1
    sys.exit(code)


class Run:
    """One recovery run in a forked process: its lines, a SIGKILL, its exit code."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        lines, self._child_end = _FORKS.Pipe(duplex=False)
        self._lines: Connection = lines
        self.process = _FORKS.Process(target=_forked_main, args=([__file__, *args], env, self._child_end), daemon=True)
        self.process.start()
        self._child_end.close()

    def readline(self, timeout: float = 60.0) -> str:
        """The run's next line ("" once it has exited without one)."""
        if not self._lines.poll(timeout):
            raise TimeoutError(f"the recovery run said nothing for {timeout} s")
        try:
            return str(self._lines.recv())
        except EOFError:
            return ""

    def rest(self) -> str:
        """Every line the run still has to give (it has exited, or been killed)."""
        lines = []
        while line := self.readline():
            lines.append(line)
        return "".join(lines)

    def kill(self) -> None:
        """SIGKILL the run and reap it."""
        self.process.kill()
        self.process.join()

    def wait(self, timeout: float = 60.0) -> int | None:
        """Wait for the run to exit; its exit code (None if it had not exited in time)."""
        self.process.join(timeout)
        return self.process.exitcode


def start(args: list[str], **env: str) -> Run:
    """Start ``main`` with ``args`` (``DATA_DIR START END CHUNK STASH [PATH]``) and ``env`` added, forked."""
    return Run(args, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
