"""Short notifications of outages and recoveries, through Apprise (the ``notify`` extra).

``Notifier(urls)`` takes Apprise URLs (``json://host/path``, ``discord://id/token``,
``mailtos://user:password@host`` ...) and, given the events of :mod:`.events`, sends one
short message per outage start and per completed or failed recovery to each URL.

Sending never holds up a recovery: messages are queued and sent by one background thread,
each service waits at most ``send_timeout`` seconds to connect and to read, and ``close``
waits at most ``close_timeout`` seconds for what is still queued. A message a URL does not
take is logged once (one warning naming the URL with its secrets hidden) and dropped.

A notification URL is a secret: each URL, and every part of it that Apprise itself hides
when it prints the URL (password, tokens, webhook keys), is registered with
``redaction.register_secret``, so it is masked like the Plex token in every output.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import warnings
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from .events import Event, describe
from .redaction import MIN_SECRET_LENGTH, register_secret, register_url

__all__ = ["EXTRA_HINT", "NOTIFIED_EVENTS", "NotifyError", "Notifier", "register_url_secrets"]

logger = logging.getLogger(__name__)

#: The events that send a message (an outage's end is told by its recovery's message).
NOTIFIED_EVENTS = ("outage_started", "recovery_completed", "recovery_failed")
EXTRA_HINT = "pip install 'plexsync-recovery-plugin[notify]'"
TITLE = "PlexSync recovery"
_URL_PARTS = re.compile(r"[/?&=@]")


class NotifyError(ValueError):
    """Notifications cannot be set up: Apprise is missing, or a URL is not one it knows."""


def _secret_parts(url: str, hidden_url: str, shown_url: str) -> set[str]:
    """The parts of ``url`` that Apprise hides when it prints it, and the URL's password."""
    parts = {url, unquote(url)}
    password = urlsplit(url).password
    if password:
        parts |= {password, unquote(password)}
    shown, hidden = _URL_PARTS.split(shown_url), _URL_PARTS.split(hidden_url)
    if len(shown) == len(hidden):
        for plain, masked in zip(shown, hidden):
            if plain != masked:
                parts |= {plain, unquote(plain), *unquote(plain).split(":")}
    return {part for part in parts if len(part) >= MIN_SECRET_LENGTH}


def register_url_secrets(url: str, service: Any = None) -> None:
    """Register ``url`` and its secret parts (as ``service``, Apprise's parsed URL, hides them) for masking."""
    hidden = shown = url
    if service is not None:
        try:
            hidden, shown = service.url(privacy=True), service.url(privacy=False)
        except Exception:  # an Apprise plugin that cannot print itself: the whole URL is still masked
            pass
    register_url(url)  # its password, whatever its length, masked by its place in any URL
    for part in _secret_parts(url, hidden, shown):
        register_secret(part, "notification URL secret")


def _import_apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise NotifyError(f"--notify needs Apprise, from the 'notify' extra: {EXTRA_HINT}") from None
    return apprise


class _Reasons(logging.Handler):
    """Collects what Apprise logs while one message is sent, to say why it failed (in one line of ours)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        self.messages = []
        logging.getLogger("apprise").addHandler(self)
        return self.messages

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("apprise").removeHandler(self)


class Notifier:
    """Sends events as short messages to Apprise URLs, from a background thread.

    Args:
        urls: Apprise URLs; each is registered as a secret before anything else.
        send_timeout: Seconds each service may take to connect, and again to answer.
        close_timeout: Seconds ``close`` waits for queued messages.

    Raises:
        NotifyError: Apprise is not installed, or a URL is not one Apprise knows.
    """

    def __init__(self, urls: Iterable[str], *, send_timeout: float = 5.0, close_timeout: float = 10.0) -> None:
        urls = list(urls)
        for url in urls:
            register_url_secrets(url)
        self.close_timeout = close_timeout
        with warnings.catch_warnings():  # Apprise loads all its services at once; some import deprecated modules
            warnings.simplefilter("ignore", DeprecationWarning)
            self._apprise = _import_apprise()
            self._targets: list[tuple[str, Any]] = []
            for url in urls:
                self._targets.append(self._target(url, send_timeout))
        self._reasons = _Reasons()
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _target(self, url: str, send_timeout: float) -> tuple[str, Any]:
        service = self._apprise.Apprise.instantiate(url)
        if service is None:
            scheme = url.split("://", 1)[0] if "://" in url else url[:12]
            raise NotifyError(f"--notify: Apprise does not know the URL scheme {scheme + '://'!r}")
        register_url_secrets(url, service)
        for name in ("socket_connect_timeout", "socket_read_timeout"):
            if hasattr(service, name):
                setattr(service, name, send_timeout)
        shown = urlsplit(str(service.url(privacy=True)))
        name = f"#{len(self._targets) + 1} {shown.scheme}://{shown.netloc}"  # never the whole URL: it is masked
        sender = self._apprise.Apprise()
        sender.add(service)
        return name, sender

    def __call__(self, event: Event) -> None:
        """Queue the message for ``event`` (if it is one that is notified); returns at once."""
        if event.get("event") not in NOTIFIED_EVENTS:
            return
        self._queue.put((self._notify_type(event), describe(event)))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_all, name="plexsync-notify", daemon=True)
                self._thread.start()

    def _notify_type(self, event: Event) -> str:
        if event["event"] == "recovery_failed":
            return "failure"
        result = event.get("result") or {}
        if event["event"] == "outage_started" or result.get("deferred") or result.get("failed"):
            return "warning"
        return "success"

    def _send_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            notify_type, body = item
            for name, sender in self._targets:
                self._send(name, sender, notify_type, body)

    def _send(self, name: str, sender: Any, notify_type: str, body: str) -> None:
        with self._reasons as reasons:
            try:
                sent = bool(sender.notify(body=body, title=TITLE, notify_type=notify_type))
                reason = reasons[-1] if reasons else "the service did not accept it"
            except Exception as error:  # a notification never stops anything
                sent, reason = False, f"{type(error).__name__}: {error}"
        if sent:
            logger.debug("notification sent to %s", name)
        else:
            logger.warning("notification to %s was not sent (%s)", name, reason)

    def close(self) -> None:
        """Send what is queued, waiting at most ``close_timeout`` seconds; then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(self.close_timeout)
        if thread.is_alive():
            logger.warning("notifications still unsent after %.0f s were dropped", self.close_timeout)
