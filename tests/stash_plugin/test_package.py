"""``stash-plugin build``: a source index and a zip in Stash's format, the same files ``stash-plugin install`` writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from plexsync_recovery_plugin import __version__
from plexsync_recovery_plugin.cli.settings import ENVIRONMENT
from plexsync_recovery_plugin.stash_plugin import install as installer
from tests.cli.conftest import REPO, assert_one_error_line, cli_env, run_cli  # noqa: F401 - fixtures

PACKAGE_DIR = Path(installer.__file__).resolve().parents[1]
#: The keys Stash reads from a source index entry (pkg/pkg: RemotePackage, PackageVersion, PackageLocation).
INDEX_KEYS = {"id", "name", "metadata", "version", "date", "path", "sha256", "requires"}


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``stash-plugin build`` run once, as a user runs it, with a fixed date."""
    out = tmp_path_factory.mktemp("built") / "source"
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT.values()}
    env.update(PYTHONPATH=str(REPO), SOURCE_DATE_EPOCH="1796601600")
    done = subprocess.run([sys.executable, "-m", "plexsync_recovery_plugin", "stash-plugin", "build", "--out", str(out)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out, done


def _zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [info.filename for info in archive.infolist()]


def test_the_index_is_what_stash_reads_and_names_the_zip_by_its_sha256(built):
    out, done = built
    [entry] = yaml.safe_load((out / "index.yml").read_text())
    assert set(entry) == INDEX_KEYS
    assert entry["id"] == "PlexSyncRecovery" and entry["name"] == "PlexSync Recovery"
    assert entry["metadata"]["description"]
    assert entry["version"] == __version__
    assert entry["date"] == "2026-12-07 00:00:00"  # SOURCE_DATE_EPOCH, in Stash's format (UTC)
    dt.datetime.strptime(entry["date"], "%Y-%m-%d %H:%M:%S")
    assert entry["path"] == "PlexSyncRecovery.zip" and (out / entry["path"]).is_file()
    assert entry["sha256"] == hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()
    assert entry["requires"] == ["PythonDepManager"]
    assert str(out / "index.yml") in done.stdout and entry["sha256"] in done.stdout


def test_the_zip_holds_the_manifest_the_launcher_and_this_package_only(built):
    out, _ = built
    names = _zip_names(out / "PlexSyncRecovery.zip")
    ours = sorted(f"plexsync_recovery_plugin/{path.relative_to(PACKAGE_DIR).as_posix()}"
                  for path in PACKAGE_DIR.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py" or path.name == "py.typed")
                  and path.relative_to(PACKAGE_DIR).parts[0] not in ("dev", "testing"))  # Stash never runs those
    assert names == sorted(names)
    assert [name for name in names if not name.startswith("plexsync_recovery_plugin/")] == [
        "LICENSE", "PlexSyncRecovery.yml", "plexsync_recovery_launcher.py"]
    assert [name for name in names if name.startswith("plexsync_recovery_plugin/")] == ours
    assert "plexsync_recovery_plugin/engine.py" in names and not any("/dev/" in name or "/testing/" in name for name in names)
    assert [name for name in names if name.endswith(".yml")] == ["PlexSyncRecovery.yml"]  # Stash loads every .yml
    with zipfile.ZipFile(out / "PlexSyncRecovery.zip") as archive:
        manifest = archive.read("PlexSyncRecovery.yml").decode()
        assert manifest.splitlines()[0] == "# requires: PythonDepManager"
        assert yaml.safe_load(manifest)["exec"] == ["python3", "{pluginDir}/plexsync_recovery_launcher.py"]
        for info in archive.infolist():
            assert (info.external_attr >> 16) & 0o777 == 0o644, info.filename


def test_the_same_source_and_date_give_the_same_bytes(run_cli, tmp_path, built):
    out, _ = built
    again = run_cli("stash-plugin", "build", "--out", tmp_path / "again", env={"SOURCE_DATE_EPOCH": "1796601600"})
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "PlexSyncRecovery.zip").read_bytes() == (out / "PlexSyncRecovery.zip").read_bytes()
    assert (tmp_path / "again" / "index.yml").read_bytes() == (out / "index.yml").read_bytes()


def test_install_writes_exactly_the_zips_files(built, tmp_path):
    out, _ = built
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    installer.install(plugins)
    folder = plugins / "PlexSyncRecovery"
    written = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert written == _zip_names(out / "PlexSyncRecovery.zip")
    with zipfile.ZipFile(out / "PlexSyncRecovery.zip") as archive:
        for name in written:
            assert (folder / name).read_bytes() == archive.read(name), name


def test_a_bad_source_date_epoch_is_one_error_line(run_cli, tmp_path):
    done = run_cli("stash-plugin", "build", "--out", tmp_path / "out", env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "SOURCE_DATE_EPOCH", "'yesterday'")
    assert not (tmp_path / "out").exists()


def test_the_launchers_pins_are_the_dependencies_this_package_declares():
    import configparser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from plexsync_recovery_plugin.stash_plugin.plexsync_recovery_launcher import DEPENDENCIES, pip_specs

    config = configparser.ConfigParser()
    config.read(Path(installer.__file__).resolve().parents[2] / "setup.cfg")
    declared = {canonicalize_name(Requirement(line).name): Requirement(line)
                for line in config["options"]["install_requires"].splitlines()
                if line.strip() and not line.strip().startswith("#")}
    pinned = [Requirement(spec) for spec in pip_specs()]
    assert {canonicalize_name(pin.name) for pin in pinned} == set(declared)
    for pin in pinned:
        [exact] = pin.specifier
        assert exact.operator == "==", pin  # PythonDepManager reads one exact version
        assert declared[canonicalize_name(pin.name)].specifier.contains(exact.version), pin
    for module, spec in DEPENDENCIES:  # PythonDepManager's "module:distribution" when the two names differ
        assert spec.split(":")[0] == module if ":" in spec else canonicalize_name(module) == canonicalize_name(spec.split("==")[0])
