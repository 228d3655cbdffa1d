"""A stand-in for Stash's package manager (``pkg/pkg``) for one plugin source, offline.

What it does is what Stash does with a source index: read the index (a YAML list of packages),
fetch the zip its ``path`` names (relative to the index), refuse it unless its SHA-256 is the
index's ``sha256``, and unpack every file of it into ``<plugins>/<local path>/<id>/`` with the
zip's modes, then write the record ``manifest`` (the package's id, name, metadata, version,
date, requires, source and the files written). Installing over an installed package first
deletes the files its record lists (only those); uninstalling deletes them and the record, and
the folder if it is then empty.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import yaml


class StashPackageManager:
    """Installs, updates and removes the packages of one source, as Stash does."""

    def __init__(self, plugins_dir: Path, local_path: str, index: Path) -> None:
        self.store = plugins_dir / local_path if local_path not in ("", ".") else plugins_dir
        self.index = index

    def remote(self, package_id: str) -> dict:
        """The index's entry for ``package_id``."""
        entries = yaml.safe_load(self.index.read_text(encoding="utf-8"))
        return next(entry for entry in entries if entry["id"] == package_id)

    def folder(self, package_id: str) -> Path:
        return self.store / package_id

    def record(self, package_id: str) -> dict | None:
        path = self.folder(package_id) / "manifest"
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None

    def install(self, package_id: str) -> Path:
        """Install (or update) ``package_id``; return its folder."""
        entry = self.remote(package_id)
        data = (self.index.parent / entry["path"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise ValueError(f"package data ({digest}) does not match expected SHA256 ({entry['sha256']})")
        if self.record(package_id) is not None:
            self._delete_files(package_id)
        folder = self.folder(package_id)
        written = []
        with zipfile.ZipFile(self.index.parent / entry["path"]) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = os.path.normpath(info.filename)
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
                mode = (info.external_attr >> 16) & 0o777
                os.chmod(target, mode or 0o644)
                written.append(name)
        record = {key: entry.get(key) for key in ("id", "name", "metadata", "version", "date", "requires")}
        record.update(source_repository=self.index.as_uri(), files=written)
        (folder / "manifest").write_text(yaml.safe_dump(record), encoding="utf-8")
        return folder

    def _delete_files(self, package_id: str) -> None:
        folder = self.folder(package_id)
        for name in self.record(package_id)["files"]:
            try:
                (folder / name).unlink()
            except OSError:
                pass
        (folder / "manifest").unlink()

    def uninstall(self, package_id: str) -> None:
        self._delete_files(package_id)
        try:
            self.folder(package_id).rmdir()
        except OSError:
            pass
