"""A stand-in for Stash's PythonDepManager plugin that keeps its ``ensure_import`` contract, offline.

The contract (stashapp/CommunityScripts, ``plugins/PythonDepManager``): ``ensure_import(*specs)``
takes ``name``, ``name==version``, ``name>=version`` or ``module:distribution==version``; for
each it makes a folder ``<folder holding PythonDepManager>/py_dependencies/<module>_<version>``
holding the distribution and what it requires, puts those folders at the front of ``sys.path``
and forgets modules of those names already imported. A failure is one ``\\x01e\\x02`` line on
stderr and an exception (``RuntimeError``; a plain ``Exception`` when git or pip is missing).

Offline, a distribution is "installed" by linking what the test's own Python has installed
(``served.json`` beside this file: distribution name -> paths, written by the test). Every call
is appended to ``calls.jsonl`` beside it; a file ``no_git`` beside it makes every call fail the
way the real one does on a machine without git.
"""

import importlib
import json
import os
import re
import sys
from pathlib import Path

__all__ = ["ensure_import"]

_HERE = Path(__file__).resolve().parent


def _error(text):
    print("\x01e\x02" + text, file=sys.stderr, flush=True)


def _throw(text, kind=Exception):
    _error(text)
    raise kind(text)


def _parse(spec):
    """``(module, distribution, version, min_version)`` as the real parser reads ``spec``."""
    if "@git+" in spec:
        _throw(f"PythonDepManager: ❌ git specs are not served offline: {spec}", RuntimeError)
    module, rest = spec.split(":", 1) if ":" in spec else ("", spec)
    if ">=" in rest:
        match = re.match(r"^([^>=]+)>=(.+)$", rest)
        if not match:
            _throw(f"PythonDepManager: ❌ Invalid version constraint: {rest}")
        return module or match.group(1), match.group(1), None, match.group(2)
    match = re.match(r"^([^=@]+)(?:==(.+))?$", rest)
    if not match:
        _throw(f"PythonDepManager: ❌ Invalid package specification: {rest}")
    return module or match.group(1), match.group(1), match.group(2), None


def ensure_import(*deps):
    with open(_HERE / "calls.jsonl", "a", encoding="utf-8") as calls:
        calls.write(json.dumps(list(deps)) + "\n")
    if not deps:
        return
    if (_HERE / "no_git").exists():
        _throw("PythonDepManager: ❌ git is required but not available")
    served = json.loads((_HERE / "served.json").read_text(encoding="utf-8"))
    base = _HERE.parent / "py_dependencies"
    base.mkdir(exist_ok=True)
    for spec in deps:
        module, distribution, version, min_version = _parse(spec)
        paths = served.get(distribution.lower())
        if paths is None:
            _throw(f"PythonDepManager: ❌ Failed to install {module}: no distribution {distribution!r}", RuntimeError)
        folder = base / (f"{module}_{version}" if version else f"{module}_latest" if min_version else module)
        if not folder.exists():
            folder.mkdir()
            for path in paths:
                os.symlink(path, folder / Path(path).name)
        for name in [name for name in sys.modules if name == module or name.startswith(module + ".")]:
            del sys.modules[name]
        entry = os.path.normpath(str(folder.resolve()))
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    importlib.invalidate_caches()
