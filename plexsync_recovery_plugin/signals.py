"""Every signal this project sends, declared once.

All signals live in a private ``blinker.Namespace``. blinker calls receivers synchronously,
on the sender's thread, so a receiver of ``outage_ended`` runs the recovery on the thread of
whatever recorded the outage's end (the watch daemon's loop, or your worker).

Order in the normal scenario, for one outage::

    outage_started -> outage_ended -> recovery_progress (once per chunk of 1,000 entries)
                   -> recovery_completed                        (or recovery_failed)

Each run over a window (the new one, and any pending window retried with it) sends its own
``recovery_progress`` signals and then its own ``recovery_completed`` or ``recovery_failed``.

When Plex is still down at the end of an outage, ``recovery_completed`` carries a result with
``deferred=True`` and the window is retried later. Times are Unix seconds as floats.

Receivers should accept ``**kwargs`` so that a new payload field never breaks them::

    def on_recovered(sender, *, result, start, end, **kwargs): ...
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from blinker import Namespace, Signal

__all__ = [
    "outage_started",
    "outage_ended",
    "recovery_progress",
    "recovery_completed",
    "recovery_failed",
    "send_isolated",
]

logger = logging.getLogger(__name__)

_signals = Namespace()

outage_started = _signals.signal(
    "outage_started",
    doc="""Plex became unreachable.

    Sender is the ``OutageHistory`` that recorded it (in a worker), or the watch daemon's
    ``DetectedOutages`` (its own detections, kept in ``recovery_state.db``).
    Provides arguments: ``start`` (float, Unix seconds: the daemon dates an outage from its
    last healthy probe, the earliest moment Plex may have failed).
    """,
)

outage_ended = _signals.signal(
    "outage_ended",
    doc="""Plex is back after an outage; DLQ entries that failed in the window can be recovered.

    Sender is the ``OutageHistory`` that closed the outage, the watch daemon's
    ``DetectedOutages``, or its ``HistoryFollower`` for outages PlexSync recorded (or anything
    else: tests send it with plain values).
    Provides arguments: ``start`` and ``end`` (float, Unix seconds, ``start <= end``).
    """,
)

recovery_progress = _signals.signal(
    "recovery_progress",
    doc="""A recovery run finished one more chunk of its window (at least once per 1,000 entries).

    Sender is the ``RecoveryPlugin`` running it.
    Provides arguments: ``done`` (int, entries decided so far), ``total`` (int, an estimate of
    the window's entries from PlexSync's index, never below ``done``; exact in the run's last
    report, where ``done == total``),
    ``counts`` (dict, ``RecoveryResult.counts()`` so far), ``start`` and ``end`` (float, the window
    searched: whole seconds, merged with any pending window it touched), ``received`` (the
    ``(start, end)`` the recovery was asked for, as given, or None for a pending window retried alone).
    Not sent by previews or when Plex fails its health check (no entry is looked at).
    """,
)

recovery_completed = _signals.signal(
    "recovery_completed",
    doc="""A recovery run over one outage window finished (possibly deferred, see the result).

    Sender is the ``RecoveryPlugin`` that ran it.
    Provides arguments: ``result`` (``RecoveryResult``), ``start`` and ``end`` (float, the window
    searched), ``received`` (as for ``recovery_progress``).
    Every receiver gets it even if another receiver raises; failures are logged.
    """,
)

recovery_failed = _signals.signal(
    "recovery_failed",
    doc="""A recovery run could not be carried out (bad window, unreadable DLQ, ...).

    Sender is the ``RecoveryPlugin``.
    Provides arguments: ``error`` (the exception), ``start`` and ``end`` (the window searched, or
    as received when the window itself is invalid), ``received`` (as for ``recovery_progress``).
    Nothing was enqueued by a run that fails before it starts; nothing is ever deleted.
    """,
)


def send_isolated(signal: Signal, sender: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
    """Deliver ``signal`` to every receiver, even when some raise.

    blinker's ``send`` stops at the first receiver that raises and hands the error to the
    sender. Here each receiver runs in its own ``try``; a failure is logged with the
    receiver's name and the others still run. A receiver calling ``sys.exit()`` is such a
    failure too: its ``SystemExit`` would otherwise end the sender's thread (the watch
    daemon's loop, your worker) and silence the receivers after it. ``KeyboardInterrupt``
    still propagates, so Ctrl-C stops the sender as it should.

    Receivers are called in the order they connected (blinker's own order is undefined), so
    a receiver connected before the ``RecoveryPlugin`` hears ``outage_ended`` before the
    ``recovery_completed`` that the plugin sends from inside that delivery.

    Returns:
        ``(receiver, return value)`` pairs of the receivers that did not raise.
    """
    answers: list[tuple[Any, Any]] = []
    if signal.is_muted:
        return answers
    for receiver in _in_connection_order(signal, list(signal.receivers_for(sender))):
        try:
            answers.append((receiver, receiver(sender, **kwargs)))
        except (Exception, SystemExit):
            name = getattr(receiver, "__qualname__", None) or repr(receiver)
            signal_name = getattr(signal, "name", None) or repr(signal)
            logger.exception("receiver %s of %s failed; the other receivers still ran", name, signal_name)
    return answers


def _in_connection_order(signal: Signal, receivers: list[Any]) -> list[Any]:
    """``receivers`` sorted by when they connected (``signal.receivers`` keeps that order)."""
    connected = [ref() if isinstance(ref, weakref.ref) else ref for ref in list(signal.receivers.values())]

    def position(receiver: Any) -> int:
        for index, candidate in enumerate(connected):
            if candidate is receiver or candidate == receiver:  # a weakly held method comes back as a new bound method
                return index
        return len(connected)

    return sorted(receivers, key=position)
