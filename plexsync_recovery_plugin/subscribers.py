"""Third-party subscribers, found through the ``plexsync_recovery.subscribers`` entry points.

A package that wants to hear outages and recoveries declares, in its own metadata::

    [options.entry_points]                      # setup.cfg; or [project.entry-points."..."] in pyproject.toml
    plexsync_recovery.subscribers =
        my_alerts = my_alerts.plexsync:setup

The entry point names a callable ``setup(signals)``. It is called once per process with the
module :mod:`plexsync_recovery_plugin.signals` and connects its receivers there::

    def setup(signals):
        signals.recovery_completed.connect(on_recovered, weak=False)

    def on_recovered(sender, *, result, start, end, **kwargs):
        ...

``watch``, ``recover`` and the Stash plugin (its tasks and its hook, when it recovers) load
the subscribers at start; ``--no-subscribers`` or ``PLEXSYNC_RECOVERY_NO_SUBSCRIBERS=1``
turns that off. A subscriber that fails to import, is not callable, or raises in ``setup``
is logged with its name and skipped; one whose receiver raises later is logged by
``send_isolated`` and the recovery goes on. Receivers run on the sender's thread, so a slow
one slows the recovery: hand long work to a thread of your own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Mapping

__all__ = ["DISABLE_VARIABLE", "ENTRY_POINT_GROUP", "Subscriber", "installed_subscribers", "load_subscribers"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "plexsync_recovery.subscribers"
#: Set to ``1`` (or ``true``/``yes``) to load no subscriber (the Stash plugin has no flags).
DISABLE_VARIABLE = "PLEXSYNC_RECOVERY_NO_SUBSCRIBERS"

_connected: set[tuple[str, str]] = set()  # (name, target) of the subscribers set up in this process


@dataclass(frozen=True)
class Subscriber:
    """One installed subscriber entry point.

    Attributes:
        name: The entry point's name.
        target: What it names (``module:attribute``).
        distribution: The installed package that declares it (``name version``), or None if unknown.
        error: Why it cannot be used (``ImportError: ...``), or None when it loads (or was not tried).
    """

    name: str
    target: str
    distribution: str | None
    error: str | None = None


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: (point.name, point.value))


def _describe(point: EntryPoint, error: str | None = None) -> Subscriber:
    dist = getattr(point, "dist", None)
    distribution = f"{dist.name} {dist.version}" if dist is not None else None
    return Subscriber(point.name, point.value, distribution, error)


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def installed_subscribers(*, try_import: bool = False) -> list[Subscriber]:
    """Every subscriber entry point installed, by name; ``try_import`` also imports each to fill ``error``."""
    found = []
    for point in _entry_points():
        error = None
        if try_import:
            try:
                target = point.load()
                if not callable(target):
                    error = f"{point.value} is not callable"
            except (Exception, SystemExit) as failure:
                error = _why(failure)
        found.append(_describe(point, error))
    return found


def disabled(environ: Mapping[str, str]) -> bool:
    """Whether ``PLEXSYNC_RECOVERY_NO_SUBSCRIBERS`` turns loading off."""
    return environ.get(DISABLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def load_subscribers(*, environ: Mapping[str, str] | None = None) -> list[Subscriber]:
    """Import each subscriber and call its ``setup(signals)``, once per process; never raises.

    Returns:
        Every subscriber tried, with ``error`` set for those skipped (already set up ones
        are not tried again and not listed).
    """
    if disabled(os.environ if environ is None else environ):
        logger.info("subscribers not loaded (%s is set)", DISABLE_VARIABLE)
        return []
    from . import signals

    tried = []
    for point in _entry_points():
        key = (point.name, point.value)
        if key in _connected:
            continue
        try:
            setup = point.load()
            if not callable(setup):
                raise TypeError(f"{point.value} is not callable (it must be a setup(signals) function)")
            setup(signals)
        except (Exception, SystemExit) as error:
            logger.error("subscriber %r (%s) skipped: %s", point.name, point.value, _why(error))
            logger.debug("subscriber %r failure detail", point.name, exc_info=error)
            tried.append(_describe(point, _why(error)))
            continue
        _connected.add(key)
        logger.info("subscriber %r (%s) connected", point.name, point.value)
        tried.append(_describe(point))
    return tried
