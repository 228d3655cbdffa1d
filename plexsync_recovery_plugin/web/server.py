"""The status server: ``/``, ``/metrics``, ``/healthz`` and the guarded actions, on a thread of the daemon's process.

``StatusServer`` runs the standard library's ``ThreadingHTTPServer`` (five routes need no
framework, and its one dependency, ``prometheus_client``, writes ``/metrics``) on a thread of
its own: a request never runs on the daemon's thread, so probes keep their pace while a page
is drawn or an action runs.

What anybody who reaches the port may do: read the page, ``/metrics`` and ``/healthz``.
Actions (``POST /actions/preview|recover|retry``) need the token the daemon was started with
(``--http-token``): either ``Authorization: Bearer <token>`` (answered in JSON), or a signed-in
browser session (``POST /login`` with the token sets an ``HttpOnly``, ``SameSite=Strict``
cookie) whose form carries the session's CSRF token (answered with a redirect to the page).
Anything else gets 403; without a configured token every action does. Tokens are compared in
constant time; the token is never written into a page, a header or a log line.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..redaction import REDACTOR
from . import MIN_TOKEN_LENGTH
from .metrics import metrics_registry, render_metrics
from .page import STYLE_HASH, render_page
from .status import ACTIONS, RunJournal, StatusSource, daemon_health

if TYPE_CHECKING:
    from ..worker.watch import WatchDaemon

__all__ = ["SESSION_COOKIE", "StatusServer"]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "plexsync_recovery_session"
#: How long a browser stays signed in, and how many sessions are kept at most (the oldest go first).
SESSION_SECONDS = 12 * 3600.0
MAX_SESSIONS = 64
#: Largest request body read (a sign-in or an action form is a few dozen bytes).
MAX_BODY = 4096
#: Seconds a connection may stay silent before it is dropped.
CONNECTION_TIMEOUT = 10.0

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_PAGE_POLICY = (f"default-src 'none'; style-src '{STYLE_HASH}'; img-src 'self'; form-action 'self';"
                " frame-ancestors 'none'; base-uri 'none'")


@dataclass
class _Session:
    csrf: str
    expires: float


class _Sessions:
    """Signed-in browsers: a random session id (the cookie) and its CSRF token, kept in memory."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        now = time.monotonic()
        with self._lock:
            self._sessions = {sid: s for sid, s in self._sessions.items() if s.expires > now}
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(min(self._sessions, key=lambda sid: self._sessions[sid].expires))
            sid = secrets.token_urlsafe(32)
            self._sessions[sid] = _Session(secrets.token_urlsafe(32), now + SESSION_SECONDS)
        return sid

    def csrf(self, sid: str | None) -> str | None:
        """The CSRF token of a live session, or None."""
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.expires <= time.monotonic():
                return None
            return session.csrf

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: "StatusServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("status page: a request from %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    """One request: routed to the ``StatusServer`` that owns the listening socket."""

    server: _HTTPServer
    server_version = "plexsync-recovery"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        logger.debug("status page: %s %s", self.address_string(), format % args)

    @property
    def app(self) -> "StatusServer":
        return self.server.app

    # -- answers -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**_HEADERS, "Content-Type": content_type, "Content-Length": str(len(body)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, (REDACTOR(text) + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(REDACTOR.redact_data(data), default=str).encode()
        self._send(status, body, "application/json")

    def _redirect(self, location: str, headers: dict[str, str] | None = None) -> None:
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain; charset=utf-8", {"Location": location, **(headers or {})})

    # -- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """``/``, ``/metrics``, ``/healthz``."""
        path = urlsplit(self.path).path
        try:
            if path == "/":
                self._page()
            elif path == "/metrics":
                body, content_type = render_metrics(self.app.registry, self.headers.get("Accept"))
                self._send(HTTPStatus.OK, body, content_type)
            elif path == "/healthz":
                health = daemon_health(self.app.source.daemon)
                self._text(HTTPStatus.OK if health.healthy else HTTPStatus.SERVICE_UNAVAILABLE, health.describe())
            else:
                self._text(HTTPStatus.NOT_FOUND, f"no page at {path}: try /, /metrics or /healthz")
        except Exception:
            logger.exception("status page: GET %s failed", path)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (the daemon's log says why)")

    do_HEAD = do_GET

    def _page(self) -> None:
        csrf = self.app.sessions.csrf(self._session_id()) if self.app.token else None
        html = render_page(self.app.source.snapshot(), actions_enabled=self.app.token is not None, csrf=csrf)
        self._send(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": _PAGE_POLICY})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        """``/login``, ``/logout``, ``/actions/<name>``."""
        path = urlsplit(self.path).path
        try:
            form = self._form()
            if form is None:
                return
            if path == "/login":
                self._login(form)
            elif path == "/logout":
                self._logout(form)
            elif path.startswith("/actions/") and path[len("/actions/"):] in ACTIONS:
                self._action(path[len("/actions/"):], form)
            else:
                self._text(HTTPStatus.NOT_FOUND, f"no action at {path}: the actions are "
                           + ", ".join(f"/actions/{name}" for name in ACTIONS))
        except Exception:
            logger.exception("status page: POST %s failed", path)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (the daemon's log says why)")

    def _form(self) -> dict[str, str] | None:
        """The request's form fields (an empty body is an empty form); None once an error was answered."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body must be at most {MAX_BODY} bytes")
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {key: values[0] for key, values in parse_qs(raw, max_num_fields=16).items()}

    def _session_id(self) -> str | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return morsel.value if morsel is not None else None

    def _forbidden(self, why: str) -> None:
        self._text(HTTPStatus.FORBIDDEN, why)

    def _login(self, form: dict[str, str]) -> None:
        if self.app.token is None:
            self._forbidden("actions are off: start the daemon with --http-token to sign in")
            return
        if not self.app.token_matches(form.get("token", "")):
            logger.warning("status page: refused a sign-in from %s (wrong token)", self.address_string())
            self._forbidden("wrong token")
            return
        sid = self.app.sessions.create()
        cookie = f"{SESSION_COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={int(SESSION_SECONDS)}"
        self._redirect("/#actions", {"Set-Cookie": cookie})

    def _logout(self, form: dict[str, str]) -> None:
        sid = self._session_id()
        csrf = self.app.sessions.csrf(sid)
        if csrf is None or not hmac.compare_digest(csrf.encode(), form.get("csrf", "").encode()):
            self._forbidden("not signed in, or the form is stale: reload the page")
            return
        self.app.sessions.drop(sid)
        self._redirect("/", {"Set-Cookie": f"{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"})

    def _action(self, name: str, form: dict[str, str]) -> None:
        if self.app.token is None:
            self._forbidden("actions are off: start the daemon with --http-token (or PLEXSYNC_RECOVERY_HTTP_TOKEN)")
            return
        authorization = self.headers.get("Authorization")
        if authorization is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() != "bearer" or not self.app.token_matches(given.strip()):
                logger.warning("status page: refused %s from %s (wrong bearer token)", name, self.address_string())
                self._forbidden("wrong token")
                return
            outcome = self.app.source.act(name)
            self._json(outcome.status, outcome.as_dict())
            return
        csrf = self.app.sessions.csrf(self._session_id())
        if csrf is None or not hmac.compare_digest(csrf.encode(), form.get("csrf", "").encode()):
            self._forbidden("sign in on the page first (or send Authorization: Bearer <token>); a form must carry"
                            " its session's CSRF token")
            return
        self.app.source.act(name)
        self._redirect("/#actions")


class StatusServer:
    """The status page, ``/metrics`` and ``/healthz`` of one ``WatchDaemon``, served on a thread.

    Binding happens here, so a port in use fails before the daemon starts; ``start`` serves.

    Args:
        daemon: The daemon to show (read from the server's threads; it runs on its own).
        host: Address to listen on (an IPv6 literal too).
        port: Port (0: any free one; ``url`` names it).
        token: The actions' token (at least ``MIN_TOKEN_LENGTH`` characters), or None: no actions.
        stash: The Stash client whose health the page shows, or None.

    Raises:
        ValueError: ``token`` is too short (the message does not show it).
        OSError: The address cannot be listened on.
    """

    def __init__(self, daemon: "WatchDaemon", host: str, port: int, *, token: str | None = None,
                 stash: Any = None) -> None:
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the status page token is {len(token)} characters long: at least {MIN_TOKEN_LENGTH}"
                             " are needed")
        self.token = token
        self.journal = RunJournal()
        self.source = StatusSource(daemon, stash, self.journal)
        self.registry = metrics_registry(self.source)
        self.sessions = _Sessions()
        server_class = type("_Server", (_HTTPServer,), {"address_family": socket.AF_INET6}) if ":" in host \
            else _HTTPServer
        self._httpd = server_class((host, port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port/`` as bound."""
        host, port = self._httpd.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in str(host) else f"http://{host}:{port}/"

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the token (compared in constant time)."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def start(self) -> "StatusServer":
        """Hear runs and serve on a daemon thread; return self."""
        self.journal.connect()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="plexsync-status-page", daemon=True)
        self._thread.start()
        logger.info("status page at %s (actions %s)", self.url, "need the token" if self.token else "off")
        return self

    def stop(self) -> None:
        """Stop serving and hearing runs (a request under way is finished first)."""
        if self._thread is not None:
            try:  # wakes serve_forever now (the accept then fails, which it ignores), not at its next poll (0.5 s)
                self._httpd.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._httpd.shutdown()
            self._thread.join(CONNECTION_TIMEOUT)
            self._thread = None
            self.journal.disconnect()
        self._httpd.server_close()

    def __enter__(self) -> "StatusServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
