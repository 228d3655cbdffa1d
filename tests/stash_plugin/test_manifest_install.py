"""The manifest against Stash's plugin config format, and ``stash-plugin install``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from plexsync_recovery_plugin import __version__
from plexsync_recovery_plugin.stash_plugin import install as installer
from plexsync_recovery_plugin.stash_plugin.tasks import TASK_MODES
from tests.cli.conftest import assert_one_error_line, cli_env, run_cli  # noqa: F401 - fixtures

MANIFEST = "PlexSyncRecovery.yml"
LAUNCHER = "plexsync_recovery_launcher.py"
# pkg/plugin/config.go: Config, OperationConfig, HookConfig, SettingConfig (decoded strictly:
# an unknown key makes Stash refuse the plugin); PluginSettingTypeEnum; hook.TriggerEnum.
CONFIG_KEYS = {"name", "description", "url", "version", "interface", "exec", "errLog", "tasks", "hooks", "ui",
               "settings"}
OPERATION_KEYS = {"name", "description", "execArgs", "defaultArgs"}
SETTING_KEYS = {"type", "displayName", "description"}
SETTING_TYPES = {"STRING", "NUMBER", "BOOLEAN"}
PLEXSYNC_TRIGGERS = ["Scene.Update.Post", "Scene.Create.Post"]  # Stash2Plex.yml's hook


def _planned(plugins_dir, name):
    return next(item for item in installer.plan_install(plugins_dir) if item.path.name == name
                and item.path.parent.name == "PlexSyncRecovery")


@pytest.fixture
def manifest():
    return yaml.safe_load(_planned("/nonexistent", MANIFEST).content)


def test_manifest_follows_stashs_plugin_config_format(manifest):
    assert set(manifest) <= CONFIG_KEYS
    assert manifest["name"] == "PlexSync Recovery" and manifest["description"]
    assert manifest["version"] == __version__
    assert manifest["interface"] == "raw"
    assert manifest["exec"] == ["python3", "{pluginDir}/" + LAUNCHER]  # Stash runs python3 with its configured Python
    assert (installer.MANIFEST_NAME, installer.LAUNCHER_NAME) == (MANIFEST, LAUNCHER)
    first_lines = _planned("/nonexistent", MANIFEST).content.decode().splitlines()[:2]
    assert first_lines == ["# requires: PythonDepManager", installer.OWN_MARKER + " (plexsync-recovery stash-plugin);"
                           " installing again replaces it."]


def test_manifest_tasks_name_the_four_modes(manifest):
    names = {task["name"]: task["defaultArgs"]["mode"] for task in manifest["tasks"]}
    assert names == {
        "Preview recovery of the last outage": "preview_last_outage",
        "Recover the last outage": "recover_last_outage",
        "Retry pending windows": "retry_pending",
        "Outage report": "outage_report",
    }
    assert set(names.values()) == set(TASK_MODES)
    for task in manifest["tasks"]:
        assert set(task) <= OPERATION_KEYS and task["description"]
        assert all(isinstance(value, str) for value in task["defaultArgs"].values())  # map[string]string


def test_manifest_hook_and_settings(manifest):
    (hook,) = manifest["hooks"]
    assert set(hook) <= OPERATION_KEYS | {"triggeredBy"} and hook["name"] and hook["description"]
    assert hook["triggeredBy"] == PLEXSYNC_TRIGGERS
    assert set(manifest["settings"]) == {
        "plex_url", "plex_token", "include_optional", "request_timeout", "no_outage_casualties", "catch_up_days"
    }
    for setting in manifest["settings"].values():
        assert set(setting) <= SETTING_KEYS and setting["type"] in SETTING_TYPES and setting["displayName"]


def test_install_writes_the_plugin_and_is_idempotent(run_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    first = run_cli("stash-plugin", "install", "--plugins-dir", plugins)
    assert first.returncode == 0, first.stderr
    folder = plugins / "PlexSyncRecovery"
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert files == [item.name for item in installer.plugin_files()]
    assert f"wrote: {folder / MANIFEST}" in first.stdout and f"wrote: {folder / LAUNCHER}" in first.stdout
    assert f"{len(files)} wrote" in first.stdout
    stamps = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}

    second = run_cli("stash-plugin", "install", "--plugins-dir", plugins)
    assert second.returncode == 0
    assert second.stdout.count("unchanged: ") == 2 and f"{len(files)} unchanged" in second.stdout
    assert "wrote" not in second.stdout
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*")} == stamps


def test_install_replaces_an_older_versions_code_and_removes_what_it_no_longer_has(run_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    installer.install(plugins)
    package = plugins / "PlexSyncRecovery" / "plexsync_recovery_plugin"
    (package / "state_db.py").write_text("# an older version's module\n")
    (package / "plugin.py").write_text("# an older version's plugin\n")

    done = run_cli("stash-plugin", "install", "--plugins-dir", plugins)

    assert done.returncode == 0, done.stderr
    assert f"removed: {package / 'state_db.py'}" in done.stdout and f"updated: {package / 'plugin.py'}" in done.stdout
    assert not (package / "state_db.py").exists()
    assert (package / "plugin.py").read_bytes() == (Path(installer.__file__).parents[1] / "plugin.py").read_bytes()


def test_install_updates_its_own_older_files_and_refuses_foreign_ones(run_cli, tmp_path):
    plugins = tmp_path / "plugins"
    folder = plugins / "PlexSyncRecovery"
    folder.mkdir(parents=True)
    (folder / LAUNCHER).write_text("# Written by plexsync-recovery stash-plugin install (an older version)\nprint('old')\n")
    (folder / MANIFEST).write_text("name: Someone else's plugin\n")
    (folder / "notes.txt").write_text("mine")

    refused = run_cli("stash-plugin", "install", "--plugins-dir", plugins)

    assert refused.returncode == 1
    assert_one_error_line(refused.stderr, MANIFEST, "is not PlexSync Recovery's")
    assert (folder / MANIFEST).read_text() == "name: Someone else's plugin\n"
    assert "print('old')" in (folder / LAUNCHER).read_text()  # nothing written when any file is foreign

    (folder / MANIFEST).unlink()
    done = run_cli("stash-plugin", "install", "--plugins-dir", plugins)
    assert done.returncode == 0, done.stderr
    assert f"updated: {folder / LAUNCHER}" in done.stdout and f"wrote: {folder / MANIFEST}" in done.stdout
    assert "print('old')" not in (folder / LAUNCHER).read_text()
    assert (folder / "notes.txt").read_text() == "mine"


def test_install_print_shows_the_files_and_writes_nothing(run_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()

    shown = run_cli("stash-plugin", "install", "--plugins-dir", plugins, "--print")

    assert shown.returncode == 0
    assert list(plugins.iterdir()) == []
    assert f"# {plugins / 'PlexSyncRecovery' / MANIFEST} (create)" in shown.stdout
    assert "interface: raw" in shown.stdout
    assert "from plexsync_recovery_plugin.stash_plugin.entry import main" in shown.stdout
    assert f"# {plugins / 'PlexSyncRecovery' / 'plexsync_recovery_plugin' / 'plugin.py'} (create)" in shown.stdout


def test_install_into_a_missing_plugins_folder_is_one_error_line(run_cli, tmp_path):
    missing = run_cli("stash-plugin", "install", "--plugins-dir", tmp_path / "nope")
    assert missing.returncode == 1
    assert_one_error_line(missing.stderr, "nope", "does not exist")
    assert not (tmp_path / "nope").exists()


def test_installed_files_are_readable_by_stash(tmp_path):
    installer.install(tmp_path)
    for item in installer.plugin_files():
        assert os.stat(tmp_path / "PlexSyncRecovery" / item.name).st_mode & 0o444 == 0o444


def test_uninstall_removes_only_the_plugins_files(run_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    installer.install(plugins)
    folder = plugins / "PlexSyncRecovery"
    (folder / "py_dependencies" / "pip-0123").mkdir(parents=True)  # the launcher's pip fallback
    (folder / "plexsync_recovery_plugin" / "__pycache__").mkdir()
    (plugins / "Other").mkdir()
    (plugins / "Other" / "Other.yml").write_text("name: Other\n")
    elsewhere = plugins / "community" / "PlexSyncRecovery"  # a plugin of the same name that is not this one
    elsewhere.mkdir(parents=True)
    (elsewhere / MANIFEST).write_text("name: not ours\n")

    done = run_cli("stash-plugin", "uninstall", "--plugins-dir", plugins)

    assert done.returncode == 0, done.stderr
    assert not folder.exists() and f"removed: {folder}" in done.stdout
    assert (plugins / "Other" / "Other.yml").exists() and (elsewhere / MANIFEST).read_text() == "name: not ours\n"

    again = run_cli("stash-plugin", "uninstall", "--plugins-dir", plugins)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_uninstall_removes_an_earlier_versions_two_files(tmp_path):
    folder = tmp_path / "PlexSyncRecovery"
    folder.mkdir()
    for name in (MANIFEST, LAUNCHER):
        (folder / name).write_text("# Written by plexsync-recovery stash-plugin install; a reinstall replaces this file.\n")

    [removal] = installer.uninstall(tmp_path)

    assert removal.left == () and not folder.exists()
    assert sorted(path.name for path in removal.removed) == [MANIFEST, LAUNCHER]
