"""How the Stash test server's ``/graphql`` endpoint answers over HTTP, as Stash's gqlgen endpoint does.

The request handler checks the body and the credentials, :func:`execute_graphql` runs the
query with ``graphql-core`` against :mod:`.stash_schema` and picks the HTTP status Stash
would (400 for a bad envelope, 422 for a query that fails to parse or validate, else 200),
and :class:`RootFieldMiddleware` counts the root fields clients ask for.
:func:`credentials_accepted` decides who is let in.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphql import MiddlewareManager, graphql_sync


from .request_handler import QuietRequestHandler
from .stash_schema import ResolveInfo, stash_schema

if TYPE_CHECKING:
    from .stash_server import StashTestServer

__all__ = ["RootFieldMiddleware", "StashRequestHandler", "credentials_accepted", "execute_graphql"]

_MAX_BODY = 16 * 1024 * 1024
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class StashRequestHandler(QuietRequestHandler):
    """POST ``/graphql`` with a JSON body, as Stash's gqlgen endpoint takes it."""

    server_version = "stash"

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        """Check the API key, run the GraphQL request and send the JSON result."""
        stash: StashTestServer = self.service
        body = self._read_body()
        if body is None:
            return
        if not stash._authorized(self.headers.get("ApiKey"), self.headers.get("Cookie")):
            self.respond(401, b"Unauthorized\n", _TEXT)
        elif urlsplit(self.path).path != "/graphql":
            self.respond(404, b"404 page not found\n", _TEXT)
        else:
            status, payload = stash._execute(body)
            answer = json.dumps(payload, separators=(",", ":")).encode()
            if stash.mode == "trickle" and b"findScene" in body:  # a question about scenes, in "trickle" mode
                self.respond_trickling(status, answer, _JSON, stash.trickle_interval, lambda: stash.mode == "trickle")
            else:
                self.respond(status, answer, _JSON)

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        """Only POST is served; say so."""
        if urlsplit(self.path).path == "/graphql":
            self.respond(405, b"use POST\n", _TEXT, {"Allow": "POST"})
        else:
            self.respond(404, b"404 page not found\n", _TEXT)

    def _read_body(self) -> bytes | None:
        """Read the request body, or answer an error and return None (closing the connection)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self.respond(411, b"Content-Length required\n", _TEXT)
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            status = 413 if length > _MAX_BODY else 400
            self.respond(status, b"bad Content-Length\n", _TEXT)
            return None
        return self.rfile.read(length)


class RootFieldMiddleware:
    """graphql-core middleware: tells the server each root field resolved (it counts them, or fails them)."""

    def __init__(self, server: StashTestServer) -> None:
        self._server = server

    def resolve(self, next_: Any, root: Any, info: ResolveInfo, **args: Any) -> Any:
        """Run for every field; only root fields (no parent path) are reported."""
        if info.path.prev is None:
            self._server._count_root_field(info.field_name)
        return next_(root, info, **args)


def credentials_accepted(
    api_key: str | None, session_cookie: str | None, given_key: str | None, cookie_header: str | None
) -> bool:
    """Whether a request's ``ApiKey`` header or ``session`` cookie lets it in, as Stash decides.

    The session cookie (what Stash gives the plugins it runs) lets a request in without the
    key; with neither an API key nor a cookie configured every request is let in.
    """
    if session_cookie and cookie_header:
        cookies = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            return False
        given = cookies.get("session")
        if given is not None and hmac.compare_digest(given.value.encode(), session_cookie.encode()):
            return True
    if not api_key:
        return not session_cookie
    return given_key is not None and hmac.compare_digest(given_key.encode(), api_key.encode())


def _request_error(message: str) -> dict[str, Any]:
    """The JSON envelope for an error found before GraphQL execution starts."""
    return {"errors": [{"message": message}], "data": None}


def execute_graphql(body: bytes, root: Any, middleware: MiddlewareManager) -> tuple[int, dict[str, Any]]:
    """Run one GraphQL request body against the Stash schema; return the HTTP status and the JSON payload."""
    try:
        request = json.loads(body)
    except ValueError as error:
        return 400, _request_error(f"json request body could not be decoded: {error}")
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        return 400, _request_error("no query given in request body")
    variables = request.get("variables")
    operation_name = request.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        return 400, _request_error("variables must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        return 400, _request_error("operationName must be a string")
    result = graphql_sync(
        stash_schema(),
        request["query"],
        root_value=root,
        variable_values=variables,
        operation_name=operation_name,
        middleware=middleware,
    )
    # Stash's gqlgen answers parse and validation failures (errors without a path) with 422.
    errors = result.errors or []
    failed_early = result.data is None and bool(errors) and all(error.path is None for error in errors)
    return (422 if failed_early else 200), result.formatted  # type: ignore[return-value]
