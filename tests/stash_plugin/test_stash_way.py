"""Installed, updated and removed the Stash way, end to end.

``stash-plugin build`` writes the source index and the zip; a stand-in of Stash's package
manager installs it from that index (checking the SHA-256) into a Stash home laid out as Stash
lays it out (``stash_home``); the launcher runs as Stash runs it (JSON on stdin, ``PYTHONPATH``
set as Stash sets it) with a Python that has neither this package nor its dependencies, which
a stand-in of PythonDepManager provides through ``ensure_import`` (or, without it, a stand-in
of pip). The loopback Plex and Stash answer as the real ones do.
"""

from __future__ import annotations

import compileall
import datetime as dt
import json
import os
import shlex
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from plexsync_recovery_plugin.stash_plugin import install as installer
from plexsync_recovery_plugin.stash_plugin.plexsync_recovery_launcher import DEPENDENCIES, Dependencies, pip_specs
from tests.cli.conftest import cli_env, run_cli, table_rows  # noqa: F401 - fixtures
from tests.conftest import WINDOW_END, WINDOW_START, drain
from tests.stash_plugin.conftest import OUTAGE, write_history
from tests.stash_plugin.stash_home import SOURCE_PATH, StashHome, bare_python, served_distributions, stash_environment
from tests.stash_plugin.stash_packages import StashPackageManager

SCENE_UPDATE = "Scene.Update.Post"
SPECS = [spec for _, spec in DEPENDENCIES]


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> Path:
    """The source index and zip, built once by the library ``stash-plugin build`` calls."""
    out = tmp_path_factory.mktemp("source")
    installer.build(out, date=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    return out / "index.yml"


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("served") / "served.json"
    path.write_text(json.dumps(served_distributions()))
    return path


@pytest.fixture(scope="session")
def python(tmp_path_factory) -> Path:
    """A Python with nothing of ours: no package, no dependency, no pip."""
    return bare_python(tmp_path_factory.mktemp("venv") / "bare")


@pytest.fixture(scope="session")
def python_with_dependencies(tmp_path_factory, served) -> Path:
    """A Python that has the dependencies, but not this package."""
    return bare_python(tmp_path_factory.mktemp("venv") / "deps", served=json.loads(served.read_text()))


@pytest.fixture(scope="session")
def python_with_pip(tmp_path_factory) -> Path:
    """Like ``python``, with an offline pip."""
    return bare_python(tmp_path_factory.mktemp("venv") / "pip", pip_stand_in=True)


@pytest.fixture(scope="session")
def installed(tmp_path_factory, source) -> Path:
    """The source folder Stash's package manager makes when it installs this plugin from its index, compiled once.

    Each test copies it (modification times kept, so Python reuses the compiled files).
    """
    plugins = tmp_path_factory.mktemp("installed") / "plugins"
    folder = StashPackageManager(plugins, SOURCE_PATH, source).install("PlexSyncRecovery")
    compileall.compile_dir(str(folder / "plexsync_recovery_plugin"), quiet=1)
    return plugins / SOURCE_PATH


@pytest.fixture
def home(tmp_path, installed, served, python, stash_server) -> StashHome:
    """A Stash home with PlexSync and PythonDepManager, this plugin installed from its source index."""
    made = StashHome(tmp_path / "stash", python, served, stash_server.plugin_connection(), stash_environment())
    made.environment["PLEXSYNC_TEST_SERVED"] = str(served)
    made.lay_out()
    shutil.copytree(installed, made.plugins / SOURCE_PATH)
    return made


@pytest.fixture
def data_dir(home) -> Path:
    """PlexSync's data folder in the Stash home (the suite's ``add_entry`` writes there)."""
    return home.data_dir


def _clean(run) -> None:
    assert run.non_protocol_lines() == [], run.stderr  # no traceback, nothing but Stash's protocol


def test_every_task_and_the_hook_run_from_the_zip_with_python_dep_manager(home, add_entry, stash_server):
    assert home.folder.is_dir() and (home.folder / "manifest").is_file()  # where Stash's package manager put it
    write_history(home.data_dir, (WINDOW_START, None))  # PlexSync: Plex is down
    add_entry(1, failed_at=WINDOW_START + 5)
    add_entry(9, failed_at=WINDOW_START + 6)  # Stash no longer has scene 9

    first = home.run(hook=SCENE_UPDATE)  # the first check: PlexSync's history as it is
    assert (first.code, first.answer["error"]) == (0, None), first.stderr
    _clean(first)
    assert home.dep_manager_calls() == [SPECS]  # pinned, as PythonDepManager reads them

    write_history(home.data_dir, OUTAGE)  # PlexSync: the outage is over
    preview = home.run(mode="preview_last_outage")
    assert preview.code == 0, preview.stderr
    assert preview.answer["output"].startswith("preview: would recover 1 of 2 DLQ entries")
    hook = home.run(hook=SCENE_UPDATE)
    assert hook.answer == {"output": "1 outage recovered", "error": None}, hook.stderr
    assert [job["scene_id"] for job in drain(home.data_dir)] == [1]
    recover = home.run(mode="recover_last_outage")
    assert recover.code == 0 and recover.answer["output"] == "recovery: 0 jobs recovered; 0 windows pending"
    retry = home.run(mode="retry_pending")
    assert retry.answer == {"output": "nothing to retry", "error": None}
    report = home.run(mode="outage_report")
    assert report.code == 0 and report.answer["output"].startswith("1 outage;")
    for run in (preview, hook, recover, retry, report):
        _clean(run)
    assert home.dep_manager_calls() == [SPECS]  # asked once: later runs find what it provided


def test_the_zip_unpacked_by_hand_runs_with_a_python_that_has_the_dependencies(home, source, add_entry,
                                                                               python_with_dependencies):
    folder = home.plugins / "PlexSyncRecovery"  # where the README says to unpack it
    with zipfile.ZipFile(source.parent / "PlexSyncRecovery.zip") as archive:
        archive.extractall(folder)
    shutil.rmtree(home.folder)  # only the copy unpacked by hand
    write_history(home.data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)

    run = home.run(mode="recover_last_outage", python=python_with_dependencies, folder=folder)
    assert run.code == 0 and run.answer["output"] == "recovery: 1 job recovered; 0 windows pending", run.stderr
    _clean(run)
    hook = home.run(hook=SCENE_UPDATE, python=python_with_dependencies, folder=folder)
    assert hook.code == 0 and hook.answer["error"] is None, hook.stderr
    assert [job["scene_id"] for job in drain(home.data_dir)] == [1]
    assert home.dep_manager_calls() == []  # nothing was missing: PythonDepManager was not asked
    assert not (folder / "py_dependencies").exists()


def test_a_newer_zip_updates_the_plugin_and_keeps_all_state(home, add_entry, plex_server, tmp_path):
    write_history(home.data_dir, OUTAGE)
    assert home.run(hook=SCENE_UPDATE).code == 0  # the hook's marker
    add_entry(1, failed_at=WINDOW_START + 5)
    assert home.run(mode="recover_last_outage").code == 0  # a ledger row
    add_entry(2, failed_at=WINDOW_START + 7)
    plex_server.set_mode("down")
    assert home.run(mode="recover_last_outage").code == 1  # a pending window
    plex_server.set_mode("up")
    state = {table: table_rows(home.data_dir / "recovery_state.db", table)
             for table in ("pending_windows", "outage_handled", "follower_meta", "stash_hook_marker")}
    ledger = table_rows(home.data_dir / "queue" / "data.db", "dead_letter_recoveries")
    assert state["pending_windows"] and state["stash_hook_marker"] and len(ledger) == 1

    newer = tmp_path / "newer"
    installer.build(newer, date=dt.datetime(2026, 12, 24, tzinfo=dt.timezone.utc))
    manager = home.package_manager(newer / "index.yml")
    manager.install("PlexSyncRecovery")  # Stash's update: the old files out, the new ones in

    assert manager.record("PlexSyncRecovery")["date"] == "2026-12-24 00:00:00"
    assert {table: table_rows(home.data_dir / "recovery_state.db", table) for table in state} == state
    assert table_rows(home.data_dir / "queue" / "data.db", "dead_letter_recoveries") == ledger
    after = home.run(hook=SCENE_UPDATE)
    assert after.code == 0 and after.answer["error"] is None, after.stderr
    assert not any("from now on" in line or "first start" in line for line in after.texts())  # its marker was kept
    retried = home.run(mode="retry_pending")
    assert retried.answer["output"] in ("retry: 1 job recovered; 0 windows pending", "nothing to retry"), retried.stderr
    assert 2 in [job["scene_id"] for job in drain(home.data_dir)]


def _plexsync_files(data_dir: Path) -> dict[str, object]:
    return {
        "dlq.db": (data_dir / "dlq.db").read_bytes(),
        "outage_history.json": (data_dir / "outage_history.json").read_bytes(),
        "queue rows": table_rows(data_dir / "queue" / "data.db", "ack_queue_default"),
    }


def test_uninstall_and_forget_leave_plexsyncs_files_as_they_were(home, add_entry, run_cli):
    write_history(home.data_dir, OUTAGE)
    add_entry(1, failed_at=WINDOW_START + 5)
    assert home.run(mode="recover_last_outage").code == 0
    (home.folder / "my notes.txt").write_text("mine")
    before = _plexsync_files(home.data_dir)
    plexsync_folder = sorted(p.relative_to(home.plexsync_folder) for p in home.plexsync_folder.rglob("*"))

    removed = run_cli("stash-plugin", "uninstall", "--plugins-dir", home.plugins)

    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in home.folder.iterdir()) == ["my notes.txt"]  # only its own files went
    assert "my notes.txt" in removed.stdout
    assert (home.dep_manager / "__init__.py").is_file()
    assert sorted(p.relative_to(home.plexsync_folder) for p in home.plexsync_folder.rglob("*")) == plexsync_folder
    assert _plexsync_files(home.data_dir) == before

    forgot = run_cli("forget", "--data-dir", home.data_dir, "--yes")

    assert forgot.returncode == 0, forgot.stderr
    assert not (home.data_dir / "recovery_state.db").exists() and not (home.data_dir / "recovery.lock").exists()
    assert table_rows(home.data_dir / "queue" / "data.db", "dead_letter_recoveries") == []
    assert _plexsync_files(home.data_dir) == before


def test_without_python_dep_manager_pip_installs_them_into_the_plugins_own_folder(home, python_with_pip):
    (home.dep_manager / "__init__.py").unlink()  # not installed

    run = home.run(mode="outage_report", python=python_with_pip)

    assert run.code == 0, run.stderr
    [call] = home.pip_calls()
    target = home.folder / "py_dependencies"
    assert call[:1] == ["install"] and call[-len(SPECS):] == pip_specs()
    assert Path(call[call.index("--target") + 1]).parent == target
    assert home.run(mode="outage_report", python=python_with_pip).code == 0
    assert len(home.pip_calls()) == 1  # found there from then on


def test_when_neither_works_one_line_says_how_and_a_hook_says_it_once_an_hour(home):
    (home.dep_manager / "no_git").write_text("")  # PythonDepManager fails, as without git; this Python has no pip

    task = home.run(mode="outage_report")

    assert task.code == 1
    [line] = [text for text in task.texts("e") if not text.startswith("PythonDepManager")]
    assert line == task.answer["error"]
    target = Dependencies(home.folder, python=str(home.python)).pip_target()
    assert target.parent == home.folder / "py_dependencies"
    assert line.endswith("run: " + shlex.join([str(home.python), "-m", "pip", "install", "--target", str(target),
                                                 *pip_specs()]))
    assert f"{home.python} -m ensurepip" in line and "plexsync-recovery-plugin" not in line

    hook = home.run(hook=SCENE_UPDATE)
    assert hook.code == 0 and hook.answer["error"] is None
    assert len([t for t in hook.texts("e") if not t.startswith("PythonDepManager")]) == 1
    quiet = home.run(hook=SCENE_UPDATE)
    assert quiet.code == 0 and quiet.answer["error"] is None and quiet.texts() == []
    stamp = home.folder / "py_dependencies" / "last_failure"
    an_hour_ago = time.time() - 3601
    os.utime(stamp, (an_hour_ago, an_hour_ago))
    again = home.run(hook=SCENE_UPDATE)
    assert len([t for t in again.texts("e") if not t.startswith("PythonDepManager")]) == 1


def test_a_hook_without_the_plugins_code_says_so_once_an_hour(home):
    shutil.rmtree(home.folder / "plexsync_recovery_plugin")

    first = home.run(hook=SCENE_UPDATE)
    assert first.code == 0 and first.answer["error"] is None
    [line] = first.texts("e")
    assert "plexsync_recovery_plugin" in line and "install the plugin again" in line
    assert "pip install plexsync-recovery-plugin" not in line
    second = home.run(hook=SCENE_UPDATE)
    assert second.code == 0 and second.texts() == []
    task = home.run(mode="outage_report")
    assert task.code == 1 and line == task.answer["error"] + " (said at most once an hour)"
