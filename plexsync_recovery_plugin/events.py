"""Each signal as plain data: one event dict per outage or recovery, for JSON lines and notifications.

``watch --json`` writes these dicts, one per line, and ``--notify`` turns them into short
messages (``describe``); both get them from ``EventRelay``, which subscribes to every
signal that announces something to the world (``EVENT_SIGNALS``) and calls one function
with the event. ``recover --json`` prints the same fields (``window_fields``). Times are
ISO-8601 UTC strings, whole seconds (``2026-02-15T19:17:49Z``); a time that is not a number
(a bad window of a ``recovery_failed``) is given as text.

``start`` and ``end`` are always the outage window as received (an outage's own readings),
so an outage's ``recovery_completed`` names the same window as its ``outage_ended``;
``searched`` is the window the run read: widened to whole seconds (the DLQ's resolution)
and merged with any pending window it touched.

Event shapes (every event has ``event`` and ``at``, when it was sent)::

    {"event": "outage_started", "at": ..., "start": ...}
    {"event": "outage_ended", "at": ..., "start": ..., "end": ..., "duration_seconds": 12.0}
    {"event": "recovery_progress", "at": ..., "start": ..., "end": ..., "searched": {"start": ..., "end": ...},
     "done": 500, "total": 2000, "counts": {...}}
    {"event": "recovery_completed", "at": ..., "start": ..., "end": ..., "searched": {...},
     "result": RecoveryResult.as_dict()}
    {"event": "recovery_failed", "at": ..., "start": ..., "end": ..., "searched": {...} or None,
     "error": "...", "error_type": "ValueError"}
"""

from __future__ import annotations

import time
from typing import Any, Callable

from blinker import Signal

from . import signals
from .formatting import iso_time

__all__ = ["EVENT_NAMES", "EventRelay", "describe", "event_signals", "to_event", "window_fields"]

#: The signals relayed, in the order they fire for one outage (``recovery_progress`` when declared).
EVENT_NAMES = ("outage_started", "outage_ended", "recovery_progress", "recovery_completed", "recovery_failed")

Event = dict[str, Any]


def event_signals() -> dict[str, Signal]:
    """The relayed signals that ``signals`` declares, by name (``recovery_progress`` may not exist)."""
    found = {name: getattr(signals, name, None) for name in EVENT_NAMES}
    return {name: signal for name, signal in found.items() if isinstance(signal, Signal)}


def _counts(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    counts = getattr(value, "counts", None)
    return dict(counts()) if callable(counts) else {}


def window_fields(start: Any, end: Any, received: Any = None, *, searched: bool = True) -> Event:
    """``start``/``end`` (the window received, else ``start``/``end``) and ``searched`` ({start, end}).

    Args:
        start: Start of the window the run searched (Unix seconds).
        end: Its end.
        received: ``(start, end)`` the recovery was asked for, or None (then it is the one searched).
        searched: False when no search happened (a window refused before any run): ``searched`` is None.
    """
    asked = received if isinstance(received, (tuple, list)) and len(received) == 2 else (start, end)
    return {
        "start": iso_time(asked[0]),
        "end": iso_time(asked[1]),
        "searched": {"start": iso_time(start), "end": iso_time(end)} if searched else None,
    }


def to_event(name: str, payload: dict[str, Any], now: float | None = None) -> Event:
    """The plain-data event of signal ``name`` sent with keyword arguments ``payload``."""
    event: Event = {"event": name, "at": iso_time(time.time() if now is None else now)}
    start, end = payload.get("start"), payload.get("end")
    if name == "outage_started":
        event["start"] = iso_time(start)
        return event
    if name == "outage_ended":
        event.update(start=iso_time(start), end=iso_time(end))
        if isinstance(start, (int, float)) and isinstance(end, (int, float)):
            event["duration_seconds"] = round(float(end) - float(start), 3)
        return event
    received = payload.get("received")
    event.update(window_fields(start, end, received, searched=name != "recovery_failed" or received is not None))
    if name == "recovery_progress":
        event.update(done=payload.get("done"), total=payload.get("total"), counts=_counts(payload.get("counts")))
    elif name == "recovery_completed":
        result = payload.get("result")
        as_dict = getattr(result, "as_dict", None)
        event["result"] = as_dict() if callable(as_dict) else None
    elif name == "recovery_failed":
        error = payload.get("error")
        event.update(error=str(error) or type(error).__name__, error_type=type(error).__name__)
    return event


def _result_text(result: dict[str, Any]) -> str:
    """``str(RecoveryResult)`` of an event's ``result``: the one rendering every door prints."""
    from .engine import RecoveryResult

    known = {key: value for key, value in result.items() if key in RecoveryResult.__dataclass_fields__}
    try:
        return str(RecoveryResult(**known))
    except (TypeError, ValueError):
        return ", ".join(f"{key} {value}" for key, value in result.items())


def describe(event: Event) -> str:
    """One short sentence for a person (a notification's body)."""
    name = event["event"]
    if name == "outage_started":
        return f"Plex outage started at {event['start']}."
    if name == "outage_ended":
        return f"Plex outage {event['start']} .. {event['end']} ended after {event.get('duration_seconds', '?')} s."
    if name == "recovery_failed":
        return f"Recovery of outage {event['start']} .. {event['end']} failed: {event['error']}"
    if name == "recovery_progress":
        of = f" of {event['total']}" if event.get("total") is not None else ""
        return f"Recovery progress: {event['done']}{of} DLQ entries."
    return f"Recovery of outage {event['start']} .. {event['end']}: {_result_text(event.get('result') or {})}."


class EventRelay:
    """Hands every relayed signal, as an event dict, to ``handle``; connect once, disconnect when done.

    ``handle`` runs on the sender's thread (blinker's rule); the senders deliver with
    ``send_isolated``, so a ``handle`` that raises is logged and never stops a recovery.

    Args:
        handle: Called with each event.
        names: The signals to relay (default: every one in ``EVENT_NAMES`` that exists).
    """

    def __init__(self, handle: Callable[[Event], None], names: tuple[str, ...] = EVENT_NAMES) -> None:
        self.handle = handle
        self._signals = {name: signal for name, signal in event_signals().items() if name in names}
        self._receivers: dict[str, Callable[..., None]] = {}

    def _receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **payload: Any) -> None:
            self.handle(to_event(name, payload))

        receive.__qualname__ = f"{type(self).__name__}({name})"
        return receive

    def connect(self) -> "EventRelay":
        """Subscribe to the signals (strongly held); return self."""
        for name, signal in self._signals.items():
            receiver = self._receivers.setdefault(name, self._receiver(name))
            signal.connect(receiver, weak=False)
        return self

    def disconnect(self) -> None:
        """Unsubscribe."""
        for name, receiver in self._receivers.items():
            self._signals[name].disconnect(receiver)

    def __enter__(self) -> "EventRelay":
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()
