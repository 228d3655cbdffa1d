"""Naming the copy of a broken file that is kept aside for the user, never overwriting an earlier one."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["free_backup_name"]


def free_backup_name(path: Path) -> Path:
    """Return ``<name>.corrupt-<time>-<pid>[-n]`` beside ``path``, a name not taken yet."""
    stem = f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    candidate, number = path.with_name(stem), 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{stem}-{number}")
    return candidate
