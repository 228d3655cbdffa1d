"""PlexSync Recovery's launcher: Stash runs this file with its Python and writes the plugin input to stdin.

It makes the plugin's code and its dependencies importable, then hands over to
``plexsync_recovery_plugin.stash_plugin.entry.main``:

* The plugin's code is the copy beside this file (what the zip and ``stash-plugin install``
  put there); a copy installed in Stash's Python is used only when there is none.
* A dependency Stash's Python lacks is asked of PythonDepManager (``ensure_import`` with the
  pinned versions below; found through ``PYTHONPATH`` or in a folder of Stash's plugins
  folder), then of pip for this Python, into a folder of the plugin's own (``--target``: it
  never changes Stash's Python, whose ``stashapi`` may be PlexSync's ``stashapp-tools``).
  Where they were found is remembered, so later runs only look (no import, no process).
* When both fail, one error line says what is missing and the command that installs it for
  this Python. A hook says so at most once an hour (and exits 0: the scene update that
  started it is never reported as failed); a task says it every time and fails.

Standard library only: it runs before anything else can be imported.
"""

# PlexSync Recovery's own file (plexsync-recovery stash-plugin); installing again replaces it.

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

__all__ = [
    "DEPENDENCIES",
    "DEPENDENCY_FOLDER",
    "QUIET_SECONDS",
    "Dependencies",
    "main",
    "pip_specs",
]

#: ``(module, ensure_import spec)`` of each dependency, pinned to the versions this release is
#: tested with. PythonDepManager's spec is ``module:distribution==version`` when the two names differ.
DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("blinker", "blinker==1.9.0"),
    ("plexapi", "plexapi==4.18.3"),
    ("stashapi", "stashapi==0.1.5"),
    ("persistqueue", "persistqueue:persist-queue==1.1.0"),
)
#: The package the plugin runs.
PACKAGE = "plexsync_recovery_plugin"
#: The plugin's own folder for what this launcher writes: pip's target, the paths found, the quiet stamp.
DEPENDENCY_FOLDER = "py_dependencies"
#: A hook reports a failure to import at most once in this many seconds.
QUIET_SECONDS = 3600.0
#: Most characters of standard input read (``stash_plugin.protocol`` refuses more).
MAX_INPUT_CHARS = 1 << 20
#: Most seconds pip may take.
PIP_TIMEOUT = 600.0

_PATHS_FILE = "paths.json"
_STAMP_FILE = "last_failure"
_NO_PIP = "this Python has no pip"


def pip_specs(dependencies: tuple[tuple[str, str], ...] = DEPENDENCIES) -> list[str]:
    """The pinned requirements as pip spells them (``persist-queue==1.1.0``)."""
    return [spec.split(":", 1)[1] if ":" in spec else spec for _, spec in dependencies]


def _log(stream: TextIO, letter: str, text: str) -> None:
    stream.write("\x01" + letter + "\x02" + " ".join(text.split()) + "\n")
    stream.flush()


def _missing(modules: list[str]) -> list[str]:
    importlib.invalidate_caches()
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            missing.append(name)
    return missing


def _writable_folder(plugin_dir: Path) -> Path:
    """The launcher's own folder in the plugin's folder, or one in the temporary folder when that cannot be written."""
    folder = plugin_dir / DEPENDENCY_FOLDER
    try:
        folder.mkdir(exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    import tempfile

    digest = hashlib.sha256(str(plugin_dir).encode()).hexdigest()[:12]
    fallback = Path(tempfile.gettempdir()) / f"plexsync-recovery-{os.getuid() if hasattr(os, 'getuid') else 0}-{digest}"
    fallback.mkdir(exist_ok=True)
    return fallback


class Dependencies:
    """Makes the pinned dependencies importable for this run.

    Args:
        plugin_dir: This plugin's folder.
        dependencies: ``(module, ensure_import spec)`` pairs.
        log: Writes one Stash log line: ``log(letter, text)``.
        python: The Python the plugin runs with (pip's and the advice's).
    """

    def __init__(
        self,
        plugin_dir: Path,
        dependencies: tuple[tuple[str, str], ...] = DEPENDENCIES,
        log: Callable[[str, str], None] = lambda letter, text: None,
        python: str = sys.executable,
    ) -> None:
        self.plugin_dir = plugin_dir
        self.dependencies = dependencies
        self.log = log
        self.python = python
        self.modules = [module for module, _ in dependencies]
        self.pins = pip_specs(dependencies)
        digest = hashlib.sha256("\n".join(self.pins).encode()).hexdigest()[:12]
        self.pip_target_name = f"pip-{digest}"
        self._helper_paths: set[str] = set()  # put on sys.path to import PythonDepManager itself

    # -- the cheap path -------------------------------------------------------------------

    def importable(self) -> bool:
        """Whether every dependency can be imported now, after adding the paths an earlier run found."""
        if not _missing(self.modules):
            return True
        self._add_paths(self._remembered_paths())
        return not _missing(self.modules)

    def _paths_file(self) -> Path:
        return self.plugin_dir / DEPENDENCY_FOLDER / _PATHS_FILE

    def _remembered_paths(self) -> list[str]:
        try:
            data = json.loads(self._paths_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict) or data.get("pins") != self.pins or not isinstance(data.get("paths"), list):
            return []
        return [path for path in data["paths"] if isinstance(path, str) and os.path.isdir(path)]

    @staticmethod
    def _add_paths(paths: list[str]) -> None:
        for path in reversed(paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        importlib.invalidate_caches()

    def _remember(self, before: list[str]) -> None:
        added = [path for path in sys.path if path not in before and path not in self._helper_paths and os.path.isdir(path)]
        try:
            folder = self.plugin_dir / DEPENDENCY_FOLDER
            folder.mkdir(exist_ok=True)
            self._paths_file().write_text(json.dumps({"pins": self.pins, "paths": added}), encoding="utf-8")
        except OSError:
            pass  # found again next time

    # -- resolving ------------------------------------------------------------------------

    def resolve(self) -> str | None:
        """Ask PythonDepManager, then pip, for what is missing; return None when all is importable, else why not."""
        before = list(sys.path)
        missing = _missing(self.modules)
        manager = self._ask_dep_manager(missing)
        missing = _missing(self.modules)
        if not missing:
            self._remember(before)
            return None
        pip = self._ask_pip(missing)
        missing = _missing(self.modules)
        if not missing:
            self._remember(before)
            return None
        return self._advice(missing, manager, pip)

    def _specs_for(self, missing: list[str]) -> list[str]:
        return [spec for module, spec in self.dependencies if module in missing]

    def _ask_dep_manager(self, missing: list[str]) -> str:
        """Call PythonDepManager's ``ensure_import``; return what happened, in a few words."""
        manager = self._import_dep_manager()
        if manager is None:
            return "PythonDepManager is not installed"
        ensure_import = getattr(manager, "ensure_import", None)
        if not callable(ensure_import):
            return "PythonDepManager has no ensure_import"
        specs = self._specs_for(missing)
        self.log("i", f"PlexSync Recovery: asking PythonDepManager for {', '.join(specs)}")
        try:
            ensure_import(*specs)
        except Exception as error:  # it logs its own line, then raises RuntimeError or Exception
            reason = _one_line(error).removeprefix("PythonDepManager:").strip().lstrip("\u274c").strip()
            return f"PythonDepManager failed ({reason})"
        return "PythonDepManager did not provide them"

    def _import_dep_manager(self) -> Any:
        try:
            return importlib.import_module("PythonDepManager")
        except ImportError:
            pass
        for folder in self._dep_manager_folders():
            parent = str(folder.parent)
            if parent not in sys.path:
                sys.path.append(parent)
                self._helper_paths.add(parent)
            try:
                return importlib.import_module("PythonDepManager")
            except ImportError:
                continue
        return None

    def _dep_manager_folders(self) -> list[Path]:
        """``PythonDepManager`` folders in Stash's plugins folder: beside this plugin, or in a sub-folder (``community/``)."""
        found: list[Path] = []
        for base in (self.plugin_dir.parent, self.plugin_dir.parent.parent):
            candidates = [base / "PythonDepManager"]
            try:
                candidates += sorted(child / "PythonDepManager" for child in base.iterdir() if child.is_dir())
            except OSError:
                pass
            for candidate in candidates:
                if (candidate / "__init__.py").is_file() and candidate not in found:
                    found.append(candidate)
        return found

    def pip_target(self) -> Path:
        """Where the pip fallback installs: a folder of the plugin's own, named after the pins."""
        return self.plugin_dir / DEPENDENCY_FOLDER / self.pip_target_name

    def pip_command(self) -> list[str]:
        """The pip command that installs the dependencies for this Python."""
        return [self.python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--quiet",
                "--target", str(self.pip_target()), *self.pins]

    def _ask_pip(self, missing: list[str]) -> str:
        import subprocess

        target = self.pip_target()
        self.log("i", f"PlexSync Recovery: installing {', '.join(missing)} with pip for {self.python} into {target}")
        try:
            target.parent.mkdir(exist_ok=True)
            done = subprocess.run(self.pip_command(), capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as error:
            return f"pip could not run ({_one_line(error)})"
        if done.returncode != 0:
            reason = _last_line(done.stderr) or f"exit code {done.returncode}"
            return _NO_PIP if "No module named pip" in done.stderr else f"pip failed ({reason})"
        self._add_paths([str(target)])
        return "pip installed them, yet they do not import"

    def install_command(self) -> str:
        """The command, for a shell, that installs the dependencies for this Python (as the fallback does)."""
        import shlex

        return shlex.join([self.python, "-m", "pip", "install", "--target", str(self.pip_target()), *self.pins])

    def _advice(self, missing: list[str], manager: str, pip: str) -> str:
        import shlex

        first = ""
        if pip == _NO_PIP:
            first = f"add pip to it first ({shlex.join([self.python, '-m', 'ensurepip'])}, or the system's python3-pip), then "
        return (f"PlexSync Recovery cannot import {', '.join(missing)} with {self.python}: {manager}; {pip}."
                f" To install them for this Python, {first}run: {self.install_command()}")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class _Unreadable(io.StringIO):
    """Standard input that could not be read: the entry reads the same error again."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self._error = error

    def read(self, size: int | None = -1) -> str:
        raise self._error


def _read_input(stdin: TextIO) -> tuple[str, TextIO]:
    """Stash's input (at most one character more than the entry accepts), and a stream that gives it again."""
    try:
        text = stdin.read(MAX_INPUT_CHARS + 1)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError: the entry says it
        return "", _Unreadable(error)
    return text, io.StringIO(text)


def _quiet(folder: Path, now: float) -> bool:
    try:
        return now - (folder / _STAMP_FILE).stat().st_mtime < QUIET_SECONDS
    except OSError:
        return False


def _note_failure(folder: Path, now: float) -> None:
    stamp = folder / _STAMP_FILE
    try:
        stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)) + "\n", encoding="utf-8")
        os.utime(stamp, (now, now))
    except OSError:
        pass


def _clear_failure(plugin_dir: Path) -> None:
    try:
        (plugin_dir / DEPENDENCY_FOLDER / _STAMP_FILE).unlink()
    except OSError:
        pass


def _answer(stdout: TextIO, output: str | None, error: str | None) -> None:
    stdout.write(json.dumps({"output": output, "error": error}) + "\n")
    stdout.flush()


def _fail(message: str, is_hook: bool, plugin_dir: Path, stdout: TextIO, stderr: TextIO, now: float) -> int:
    """Say why the plugin cannot run, answer Stash, and return the exit code.

    A task fails with the message as its ``error``. A hook logs it at most once an hour and
    answers without an error (Stash would log that a second time), exiting 0.
    """
    if not is_hook:
        _log(stderr, "e", message)
        _answer(stdout, None, message)
        return 1
    folder = _writable_folder(plugin_dir)
    if not _quiet(folder, now):
        _note_failure(folder, now)
        _log(stderr, "e", f"{message} (said at most once an hour)")
    _answer(stdout, "PlexSync Recovery cannot run (see the log)", None)
    return 0


def main(
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    plugin_dir: Path | None = None,
    now: float | None = None,
) -> int:
    """Make the plugin importable and run it on Stash's input; return the exit code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    folder = plugin_dir or Path(__file__).resolve().parent
    moment = time.time() if now is None else now
    text, plugin_input = _read_input(stdin)
    is_hook = '"hookContext"' in text  # as the entry tells a hook, even from input it cannot parse
    if (folder / PACKAGE / "__init__.py").is_file() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    if _missing([PACKAGE]):
        return _fail(
            f"PlexSync Recovery's code is missing: {folder} has no {PACKAGE} folder and {sys.executable} has no"
            f" such package; install the plugin again (Settings > Plugins, or unpack PlexSyncRecovery.zip into"
            f" {folder})", is_hook, folder, stdout, stderr, moment)
    dependencies = Dependencies(folder, log=lambda letter, text: _log(stderr, letter, text))
    if not dependencies.importable():
        if is_hook and _quiet(_writable_folder(folder), moment):  # said within the hour: nothing is tried
            _answer(stdout, "PlexSync Recovery cannot run (see the log)", None)
            return 0
        problem = dependencies.resolve()
        if problem is not None:
            return _fail(problem, is_hook, folder, stdout, stderr, moment)
        _clear_failure(folder)
    try:
        from plexsync_recovery_plugin.stash_plugin.entry import main as entry_main
    except ImportError as error:
        return _fail(f"PlexSync Recovery cannot start: {_one_line(error)}", is_hook, folder, stdout, stderr, moment)
    return entry_main(stdin=plugin_input, stdout=stdout, stderr=stderr)


if __name__ == "__main__":
    sys.exit(main())
