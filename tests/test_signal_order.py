"""``send_isolated`` calls receivers in the order they connected (blinker's own order is undefined)."""

from __future__ import annotations

from blinker import Signal

from plexsync_recovery_plugin.signals import send_isolated


class Listener:
    def __init__(self, index: int, heard: list[int]) -> None:
        self.index, self.heard = index, heard

    def on_signal(self, sender, **kwargs):
        self.heard.append(self.index)


def test_receivers_are_called_in_connection_order():
    signal = Signal("order")
    heard: list[int] = []
    listeners = [Listener(index, heard) for index in range(40)]
    for listener in listeners:
        if listener.index % 2:
            signal.connect(listener.on_signal)  # weakly held bound method
        else:
            signal.connect(listener.on_signal, weak=False)
    send_isolated(signal, "sender")
    assert heard == list(range(40))


def test_a_receiver_of_one_sender_keeps_its_place():
    signal = Signal("order-by-sender")
    heard: list[str] = []
    sender = object()
    signal.connect(lambda s, **kw: heard.append("any-1"), weak=False)
    signal.connect(lambda s, **kw: heard.append("mine"), sender=sender, weak=False)
    signal.connect(lambda s, **kw: heard.append("any-2"), weak=False)
    send_isolated(signal, sender)
    send_isolated(signal, "someone else")
    assert heard == ["any-1", "mine", "any-2", "any-1", "any-2"]
