"""Throwaway installed distributions for tests: a ``*.dist-info`` with entry points, and its modules.

Put the returned folder on ``sys.path`` (or ``PYTHONPATH`` for a subprocess) and
``importlib.metadata`` finds the distribution as if pip had installed it. Kept free of
pytest so that subprocess scripts may import it too.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping

__all__ = ["SUBSCRIBER_MODULES", "write_distribution", "write_subscriber_distribution"]


def write_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str],
    version: str = "1.0",
) -> Path:
    """Write distribution ``name`` into ``root`` (created): its dist-info and its ``modules`` (file name -> source).

    Returns:
        ``root``, the folder to put on the path.
    """
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = []
    for group, points in entry_points.items():
        lines = "".join(f"{point} = {target}\n" for point, target in points.items())
        sections.append(f"[{group}]\n{lines}")
    (info / "entry_points.txt").write_text("\n".join(sections))
    for file_name, source in modules.items():
        (root / file_name).write_text(textwrap.dedent(source))
    return root


#: A subscriber that appends what it heard to ``$SUBSCRIBER_LOG``, one that cannot be imported,
#: and one whose ``setup`` raises.
SUBSCRIBER_MODULES = {
    "heard_sub.py": '''
        import json, os

        SETUPS = []

        def on_completed(sender, *, result, start, end, **kwargs):
            path = os.environ.get("SUBSCRIBER_LOG")
            if path:
                with open(path, "a") as log:
                    log.write(json.dumps({"recovered": result.recovered, "start": start, "end": end}) + "\\n")

        def setup(signals):
            SETUPS.append(signals)
            signals.recovery_completed.connect(on_completed, weak=False)
    ''',
    "broken_sub.py": '''
        import no_such_module_for_this_subscriber

        def setup(signals):
            pass
    ''',
    "raising_sub.py": '''
        def setup(signals):
            raise RuntimeError("setup refuses")
    ''',
}


def write_subscriber_distribution(root: Path) -> Path:
    """The distribution ``plexsync-test-subscribers`` with ``heard``, ``broken`` and ``raising`` subscribers."""
    points = {"heard": "heard_sub:setup", "broken": "broken_sub:setup", "raising": "raising_sub:setup"}
    return write_distribution(
        root, "plexsync-test-subscribers", {"plexsync_recovery.subscribers": points}, SUBSCRIBER_MODULES
    )
