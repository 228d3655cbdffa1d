"""Finding PlexSync's data folder wherever Stash put PlexSync, and saying where it looked when it is not there."""

from __future__ import annotations

import json
import subprocess
import sys

from plexsync_recovery_plugin.plexsync_paths import (
    cli_data_dir_search,
    find_plexsync_data_dir,
    plexsync_plugin_dir,
    stash_plugins_dir,
)
from tests.cli.conftest import REPO, assert_one_error_line


def _plexsync(folder, manifest=True):
    (folder / "data").mkdir(parents=True)
    if manifest:
        (folder / "Stash2Plex.yml").write_text("name: Stash2Plex\n")
    return folder / "data"


def test_plexsync_installed_by_stashs_package_manager_is_found_in_its_source_folder(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "community" / "PythonDepManager").mkdir(parents=True)
    data = _plexsync(plugins / "stash2plex" / "Stash2Plex")
    assert plexsync_plugin_dir(plugins) == plugins / "stash2plex" / "Stash2Plex"
    assert find_plexsync_data_dir([plugins], environ={}).found == data


def test_a_data_folder_without_the_manifest_beside_it_is_found(tmp_path):
    plugins = tmp_path / "plugins"
    data = _plexsync(plugins / "Stash2Plex", manifest=False)
    assert find_plexsync_data_dir([plugins], environ={}).found == data
    elsewhere = tmp_path / "other-plugins"
    in_source = _plexsync(elsewhere / "community" / "Stash2Plex", manifest=False)
    assert find_plexsync_data_dir([elsewhere], environ={}).found == in_source


def test_the_manifest_wins_over_a_bare_data_folder_and_the_variable_over_both(tmp_path):
    plugins = tmp_path / "plugins"
    _plexsync(plugins / "Stash2Plex", manifest=False)
    real = _plexsync(plugins / "stash2plex-main")
    assert find_plexsync_data_dir([plugins], environ={}).found == real
    search = find_plexsync_data_dir([plugins], environ={"STASH_PLUGIN_DATA": str(tmp_path / "x")})
    assert search.found == tmp_path / "x" and search.looked == (f"STASH_PLUGIN_DATA={tmp_path / 'x'}",)


def test_not_found_names_every_place_it_looked(tmp_path):
    first, second = tmp_path / "a" / "plugins", tmp_path / "b" / "plugins"
    (first / "Stash2Plex").mkdir(parents=True)  # no manifest, no data: not PlexSync's
    search = find_plexsync_data_dir([first, second, first], environ={})
    assert search.found is None
    assert search.looked == (
        f"{first}/Stash2Plex/ and {first}/*/Stash2Plex/ (Stash2Plex.yml or data/)",
        f"{second}/Stash2Plex/ and {second}/*/Stash2Plex/ (Stash2Plex.yml or data/)",
    )
    assert str(first) in search.where() and str(second) in search.where()


def test_stashs_plugins_folder_is_the_one_its_config_names(tmp_path):
    config = tmp_path / "stash"
    config.mkdir()
    assert stash_plugins_dir(config) == config / "plugins"
    (config / "config.yml").write_text("database: x.sqlite\nplugins_path: /srv/stash plugins\n")
    assert stash_plugins_dir(config).as_posix() == "/srv/stash plugins"
    (config / "config.yml").write_text('plugins_path: "extra"\n')
    assert stash_plugins_dir(config) == config / "extra"


def test_the_cli_finds_a_bare_data_folder_and_says_where_it_looked_when_there_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    search = cli_data_dir_search()
    assert search.found is None and f"{tmp_path}/.stash/plugins/Stash2Plex/" in search.where()
    data = _plexsync(tmp_path / ".stash" / "plugins" / "Stash2Plex", manifest=False)
    (data / "queue").mkdir()
    assert cli_data_dir_search().found == data


def _cli(home, *args):
    env = {"HOME": str(home), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "PLEXSYNC_RECOVERY_NO_SUBSCRIBERS": "1"}
    return subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_without_data_dir_uses_plexsyncs_folder_or_names_where_it_looked(tmp_path):
    missing = _cli(tmp_path, "outages", "--json")
    assert missing.returncode == 2
    assert_one_error_line(missing.stderr, "no data directory", f"{tmp_path}/.stash/plugins/Stash2Plex/",
                          "/root/.stash/plugins/Stash2Plex/")

    data = _plexsync(tmp_path / ".stash" / "plugins" / "Stash2Plex", manifest=False)
    (data / "queue").mkdir()
    found = _cli(tmp_path, "outages", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["outages"] == []


def test_a_task_that_finds_no_data_folder_names_where_it_looked(tmp_path):
    config = tmp_path / "stash"
    plugin = config / "plugins" / "plexsync-recovery" / "PlexSyncRecovery"
    plugin.mkdir(parents=True)
    payload = {"server_connection": {"Dir": str(config), "PluginDir": str(plugin), "Port": 9},
               "args": {"mode": "outage_report"}}
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "PLEXSYNC_RECOVERY_NO_SUBSCRIBERS": "1"}
    done = subprocess.run([sys.executable, "-c", "import sys; from plexsync_recovery_plugin.stash_plugin.entry import main;"
                           " sys.exit(main())"], input=json.dumps(payload), env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert "PlexSync's data directory was not found" in error
    assert f"{plugin.parent}/Stash2Plex/" in error and f"{config / 'plugins'}/*/Stash2Plex/" in error
