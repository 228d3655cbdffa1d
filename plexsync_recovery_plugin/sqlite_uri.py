"""Opening SQLite files by URI, with the path escaped.

A ``file:`` URI built by string formatting cuts the path at ``?`` or ``#`` and decodes
``%xx``: a data dir named ``plex#2`` would silently open another, empty file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["sqlite_uri"]


def sqlite_uri(path: str | Path, mode: str) -> str:
    """``file:`` URI of ``path`` with ``mode`` (``ro``: never writes; ``rw``: never creates)."""
    return f"{Path(path).absolute().as_uri()}?mode={mode}"
