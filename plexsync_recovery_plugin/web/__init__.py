"""The web door of the watch daemon: a status page, Prometheus metrics and a health check (``watch --http``).

``status`` gathers what is shown (from the same API every door asks) and runs the actions,
``page`` draws the HTML page and its SVG timeline, ``metrics`` writes ``/metrics`` with
``prometheus_client`` (the ``web`` extra: only ``metrics`` and ``server`` need it), and
``server`` serves all three, and the guarded actions, on a thread of the daemon's process.
"""

__all__ = ["MIN_TOKEN_LENGTH"]

#: The shortest token (``--http-token``) the actions accept: it guards recoveries from whoever reaches the port.
MIN_TOKEN_LENGTH = 16
