"""A Stash GraphQL server stand-in on 127.0.0.1, good enough for the real ``stashapi`` client.

Why: the plugin asks Stash which scenes still exist, through ``stashapi``. Faking
``StashInterface`` would skip exactly the parts that break in production (its connect-time
introspection, its habit of turning GraphQL errors into ``{}``, HTTP failures), so this
server speaks real GraphQL over HTTP, executed by ``graphql-core`` against a subset of
Stash's own schema (type and field names letter for letter), with scenes selected and paged
as Stash's ``findScene``/``findScenes`` do, and the HTTP statuses Stash's endpoint answers.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from http.cookies import CookieError, SimpleCookie
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    MiddlewareManager,
    build_schema,
    graphql_sync,
)

from .loopback_http import LoopbackHTTPService, QuietRequestHandler

__all__ = ['SCENE_FIELDS', 'STASH_SDL', 'StashBackend', 'stash_schema', 'SceneStore', 'parse_id', 'parse_id_list', 'RootFieldMiddleware', 'StashRequestHandler', 'credentials_accepted', 'execute_graphql', 'DATABASE_LOCKED_MESSAGE', 'STASH_MODES', 'StashTestServer']


# ==== stash schema ==============================================================================
# The GraphQL schema :class:`~.stash_server.StashTestServer` serves: a subset of Stash's own.
#
# Why a subset of the real thing: ``stashapi`` introspects the schema when it connects and
# builds its query fragments (``...Scene``) from what it finds, so types and field names must
# be Stash's, letter for letter (checked against ``graphql/schema/schema.graphql`` and
# ``graphql/schema/types/{scene,filters,version,config,scalars}.graphql`` in stashapp/stash).
# Only what the plugin asks for is here: the ``version`` and ``configuration`` queries
# ``StashInterface`` runs on connect, ``findScene`` and ``findScenes``, and
# ``configuration { plugins }`` (the settings of Stash's plugins, which the Stash plugin reads).
#
# The schema is built once per process (:func:`stash_schema`); its resolvers are thin and
# delegate to the ``root_value`` of each request, a :class:`StashBackend`.

#: graphql-core's ``GraphQLResolveInfo`` is generic from 3.3 on and plain before; resolvers take it as this.
ResolveInfo = Any

STASH_SDL = '''
"Point in time, written as an RFC 3339 string."
scalar Time

enum SortDirectionEnum {
  ASC
  DESC
}

"Paging and sorting for the find* queries."
input FindFilterType {
  q: String
  "1-based; values below 1 mean 1."
  page: Int
  "Scenes per page, 25 if omitted; -1 means all of them."
  per_page: Int
  sort: String
  direction: SortDirectionEnum
}

enum CriterionModifier {
  EQUALS
  NOT_EQUALS
  GREATER_THAN
  LESS_THAN
  IS_NULL
  NOT_NULL
  INCLUDES_ALL
  INCLUDES
  EXCLUDES
  MATCHES_REGEX
  NOT_MATCHES_REGEX
  BETWEEN
  NOT_BETWEEN
}

input IntCriterionInput {
  value: Int!
  value2: Int
  modifier: CriterionModifier!
}

input StringCriterionInput {
  value: String!
  modifier: CriterionModifier!
}

"The test server applies only the id criterion and ignores the rest."
input SceneFilterType {
  AND: SceneFilterType
  OR: SceneFilterType
  NOT: SceneFilterType
  id: IntCriterionInput
  title: StringCriterionInput
  code: StringCriterionInput
  details: StringCriterionInput
  rating100: IntCriterionInput
  organized: Boolean
  o_counter: IntCriterionInput
  is_missing: String
  url: StringCriterionInput
}

type Scene {
  id: ID!
  title: String
  code: String
  details: String
  urls: [String!]!
  date: String
  rating100: Int
  organized: Boolean!
  o_counter: Int
  created_at: Time!
  updated_at: Time!
}

type FindScenesResultType {
  count: Int!
  "Seconds; always 0 here, the test scenes have no files."
  duration: Float!
  "Bytes; always 0 here, the test scenes have no files."
  filesize: Float!
  scenes: [Scene!]!
}

type Version {
  version: String
  hash: String!
  build_time: String!
}

type ConfigGeneralResult {
  apiKey: String!
}

"Plugin id -> that plugin's settings (a JSON object), as Stash keeps them."
scalar PluginConfigMap

type ConfigResult {
  general: ConfigGeneralResult!
  "Settings of every plugin that has any, or only of the ids in include."
  plugins(include: [ID!]): PluginConfigMap!
}

type Query {
  "A scene by id; null when there is none."
  findScene(id: ID, checksum: String): Scene
  findScenes(
    scene_filter: SceneFilterType
    scene_ids: [Int!] @deprecated(reason: "use ids")
    ids: [ID!]
    filter: FindFilterType
  ): FindScenesResultType!
  configuration: ConfigResult!
  version: Version!
}
'''

#: Fields of ``Scene`` besides ``id``: the keywords ``StashTestServer.add_scene`` accepts.
SCENE_FIELDS = (
    "title",
    "code",
    "details",
    "urls",
    "date",
    "rating100",
    "organized",
    "o_counter",
    "created_at",
    "updated_at",
)


class StashBackend(Protocol):
    """What the resolvers need from a request's ``root_value``."""

    def resolve_version(self) -> dict[str, Any]:
        """Return the ``Version`` object."""

    def resolve_configuration(self) -> dict[str, Any]:
        """Return the ``ConfigResult`` object."""

    def resolve_plugin_settings(self, include: list[str] | None) -> dict[str, Any]:
        """Return ``ConfigResult.plugins``: plugin id -> settings."""

    def resolve_find_scene(self, scene_id: str | None, checksum: str | None) -> dict[str, Any] | None:
        """Return one ``Scene`` or None."""

    def resolve_find_scenes(
        self,
        find_filter: dict[str, Any] | None,
        scene_filter: dict[str, Any] | None,
        scene_ids: list[int] | None,
        ids: list[str] | None,
    ) -> dict[str, Any]:
        """Return a ``FindScenesResultType``."""


def _version(root: StashBackend, info: ResolveInfo) -> dict[str, Any]:
    return root.resolve_version()


def _configuration(root: StashBackend, info: ResolveInfo) -> dict[str, Any]:
    return root.resolve_configuration()


def _plugins(config: Any, info: ResolveInfo, include: list[str] | None = None) -> dict[str, Any]:
    backend: StashBackend = info.root_value
    return backend.resolve_plugin_settings(include)


def _find_scene(
    root: StashBackend,
    info: ResolveInfo,
    id: str | None = None,  # noqa: A002 - the GraphQL argument's name
    checksum: str | None = None,
) -> dict[str, Any] | None:
    return root.resolve_find_scene(id, checksum)


def _find_scenes(
    root: StashBackend,
    info: ResolveInfo,
    filter: dict[str, Any] | None = None,  # noqa: A002 - the GraphQL argument's name
    scene_filter: dict[str, Any] | None = None,
    scene_ids: list[int] | None = None,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    return root.resolve_find_scenes(filter, scene_filter, scene_ids, ids)


def _serialize_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@functools.cache
def stash_schema() -> GraphQLSchema:
    """Build the schema once per process and return it (resolvers attached).

    Returns:
        The executable schema; pass a :class:`StashBackend` as ``root_value``.
    """
    schema = build_schema(STASH_SDL)
    query_fields = schema.query_type.fields  # type: ignore[union-attr]
    query_fields["version"].resolve = _version
    query_fields["configuration"].resolve = _configuration
    query_fields["findScene"].resolve = _find_scene
    query_fields["findScenes"].resolve = _find_scenes
    schema.type_map["Time"].serialize = _serialize_time  # type: ignore[attr-defined]
    config_result = schema.type_map["ConfigResult"]
    assert isinstance(config_result, GraphQLObjectType)
    config_result.fields["plugins"].resolve = _plugins
    return schema


# ==== stash scenes ==============================================================================
# The Stash test server's scenes, and how Stash's ``findScene``/``findScenes`` select and page them.
#
# Why apart from the server: what a scene record holds and how Stash's queries pick scenes
# (strict id lists, id criteria, title search, sorting, paging) is Stash's behaviour, not
# HTTP plumbing. Scenes live in a dict under one lock, so that a benchmark with 100,000
# scenes stays fast. Errors a real Stash answers as GraphQL errors raise ``GraphQLError``.

_DEFAULT_PER_PAGE = 25


class SceneStore:
    """Scenes by id, safe to use from the server's connection threads."""

    def __init__(self) -> None:
        self._scenes: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, scene_id: int, **fields: Any) -> dict[str, Any]:
        """Create or replace one scene; return a copy of the record (see ``StashTestServer.add_scene``).

        Raises:
            ValueError: ``scene_id`` is not a positive integer.
            TypeError: An unknown field was given.
        """
        unknown = set(fields) - set(SCENE_FIELDS)
        if unknown:
            raise TypeError(f"unknown Scene fields: {sorted(unknown)}")
        record = _new_scene(_check_scene_id(scene_id), _now())
        record.update(fields)
        record["urls"] = tuple(record["urls"])
        for stamp in ("created_at", "updated_at"):
            if isinstance(record[stamp], datetime):
                record[stamp] = record[stamp].isoformat()
        with self._lock:
            self._scenes[scene_id] = record
        return dict(record)

    def add_many(self, scene_ids: Iterable[int]) -> None:
        """Create or replace many scenes with default fields; none is added if an id is bad.

        Raises:
            ValueError: An id is not a positive integer.
        """
        stamp = _now()
        records = {_check_scene_id(scene_id): _new_scene(scene_id, stamp) for scene_id in scene_ids}
        with self._lock:
            self._scenes.update(records)

    def delete(self, scene_id: int) -> bool:
        """Delete one scene; True if it existed."""
        with self._lock:
            return self._scenes.pop(scene_id, None) is not None

    def ids(self) -> set[int]:
        """A copy of the ids of all scenes."""
        with self._lock:
            return set(self._scenes)

    def get(self, scene_id: int) -> dict[str, Any] | None:
        """The scene with this id, or None."""
        with self._lock:
            return self._scenes.get(scene_id)

    def find_many(self, wanted: list[int], find_filter: dict[str, Any], *, strict: bool) -> dict[str, Any]:
        """``findScenes`` by id list: strict as real Stash's FindMany, or lenient (those that exist, paged)."""
        if strict:
            return self._find_many_strict(wanted)
        with self._lock:
            found = (self._scenes.get(key) for key in sorted(set(wanted)))
            scenes = [scene for scene in found if scene is not None]
        return _found(scenes, _page(scenes, find_filter))

    def find_filtered(self, find_filter: dict[str, Any], id_criterion: dict[str, Any] | None) -> dict[str, Any]:
        """``findScenes`` without an id list: the id criterion, ``q``, ``sort``/``direction`` and paging."""
        scenes = self._query(find_filter, id_criterion)
        return _found(scenes, _page(scenes, find_filter))

    def _find_many_strict(self, wanted: list[int]) -> dict[str, Any]:
        """Real Stash's FindMany: every id must exist, input order, no paging."""
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        with self._lock:
            for key in wanted:
                scene = self._scenes.get(key)
                # Stash places each row at the first index of its id, so a repeated id is "not found".
                if scene is None or key in seen:
                    raise GraphQLError(f"scene with id {key} not found")
                seen.add(key)
                found.append(scene)
        return _found(found, found)

    def _query(self, find_filter: dict[str, Any], id_criterion: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Scenes matching the id criterion and ``q`` (case-insensitive title substring), sorted as asked."""
        with self._lock:
            if id_criterion is None:
                scenes = list(self._scenes.values())
            else:
                scenes = _select_by_id(self._scenes, id_criterion)
        text = (find_filter.get("q") or "").casefold()
        if text:
            scenes = [scene for scene in scenes if text in (scene["title"] or "").casefold()]
        reverse = find_filter.get("direction") == "DESC"
        if find_filter.get("sort") == "title":
            scenes.sort(key=lambda scene: ((scene["title"] or "").casefold(), int(scene["id"])),
                        reverse=reverse)
        else:
            scenes.sort(key=lambda scene: int(scene["id"]), reverse=reverse)
        return scenes


def _found(matching: list[dict[str, Any]], page: list[dict[str, Any]]) -> dict[str, Any]:
    """``FindScenesResultType``: ``count`` is every match, ``scenes`` the page."""
    return {"count": len(matching), "duration": 0.0, "filesize": 0.0, "scenes": page}


def _select_by_id(scenes: dict[int, dict[str, Any]], criterion: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply ``scene_filter: {id: IntCriterionInput}`` the way Stash's SQL does (BETWEEN is inclusive)."""
    modifier, low, high = criterion["modifier"], criterion["value"], criterion.get("value2")
    if modifier in ("BETWEEN", "NOT_BETWEEN") and high is None:
        raise GraphQLError(f"{modifier} needs value2")
    if modifier == "BETWEEN" and high is not None and high - low < len(scenes):  # a short range: look its ids up
        found = (scenes.get(key) for key in range(low, high + 1))
        return [scene for scene in found if scene is not None]
    tests = {
        "EQUALS": lambda key: key == low,
        "NOT_EQUALS": lambda key: key != low,
        "GREATER_THAN": lambda key: key > low,
        "LESS_THAN": lambda key: key < low,
        "BETWEEN": lambda key: low <= key <= high,
        "NOT_BETWEEN": lambda key: key < low or key > high,
    }
    if modifier not in tests:
        raise GraphQLError(f"modifier {modifier} is not supported for id")
    matches: Callable[[int], bool] = tests[modifier]
    return [scene for key, scene in scenes.items() if matches(key)]


def _page(scenes: list[dict[str, Any]], find_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply ``page`` (1-based) and ``per_page`` (25 by default, negative for all), as Stash does."""
    per_page = find_filter.get("per_page")
    per_page = _DEFAULT_PER_PAGE if per_page is None else per_page
    if per_page < 0:
        return scenes
    page = max(find_filter.get("page") or 1, 1)
    start = (page - 1) * per_page
    return scenes[start : start + per_page]


def parse_id(value: str) -> int:
    """A GraphQL ``ID`` as Stash parses it (``strconv.Atoi``).

    Raises:
        GraphQLError: Not a whole number, with Stash's message.
    """
    try:
        return int(value)
    except ValueError:
        raise GraphQLError(f'strconv.Atoi: parsing "{value}": invalid syntax') from None


def parse_id_list(values: list[str]) -> list[int]:
    """Stash's handling of ``ids: [ID!]``: duplicates and non-numbers are errors.

    Raises:
        GraphQLError: A duplicate or non-numeric id, with Stash's message.
    """
    if len(set(values)) != len(values):
        duplicate = next(value for index, value in enumerate(values) if value in values[:index])
        raise GraphQLError(f"validating ids: duplicate id found: {duplicate}")
    try:
        return [int(value) for value in values]
    except ValueError as error:
        raise GraphQLError(f"converting ids: {error}") from None


def _new_scene(scene_id: int, stamp: str) -> dict[str, Any]:
    return {
        "id": str(scene_id),
        "title": f"Scene {scene_id}",
        "code": None,
        "details": None,
        "urls": (),  # a tuple keeps the record free of containers, so the GC ignores it
        "date": None,
        "rating100": None,
        "organized": False,
        "o_counter": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _check_scene_id(scene_id: int) -> int:
    if isinstance(scene_id, bool) or not isinstance(scene_id, int) or scene_id < 1:
        raise ValueError(f"scene ids are positive integers, got {scene_id!r}")
    return scene_id


# ==== stash http ================================================================================
# How the Stash test server's ``/graphql`` endpoint answers over HTTP, as Stash's gqlgen endpoint does.
#
# The request handler checks the body and the credentials, :func:`execute_graphql` runs the
# query with ``graphql-core`` against ``stash_schema()`` and picks the HTTP status Stash
# would (400 for a bad envelope, 422 for a query that fails to parse or validate, else 200),
# and :class:`RootFieldMiddleware` counts the root fields clients ask for.
# :func:`credentials_accepted` decides who is let in.

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


# ==== stash server ==============================================================================
# A Stash GraphQL server stand-in on 127.0.0.1, good enough for the real ``stashapi`` client.
#
# Why: the plugin asks Stash which scenes still exist, through ``stashapi``. Faking
# ``StashInterface`` would skip exactly the parts that break in production (its connect-time
# introspection, its habit of turning GraphQL errors into ``{}``, HTTP failures), so this
# server speaks real GraphQL over HTTP, executed by ``graphql-core`` against a subset of
# Stash's schema (``stash_schema()``), with scenes kept in a dict so that a benchmark with
# 100,000 scenes stays fast. A test can switch it to ``"locked"`` (SQLite's "database is
# locked", answered as Stash does) or ``"down"`` (connection refused) at run time, and can
# count the root fields clients asked for.

LOGGER = logging.getLogger("plexsync_recovery_plugin.dev")

#: Modes :meth:`StashTestServer.set_mode` accepts.
STASH_MODES = frozenset({"up", "locked", "down", "trickle"})

#: The error message Stash passes on from SQLite when another writer holds the database.
DATABASE_LOCKED_MESSAGE = "database is locked"

# Root fields that read the database in real Stash, hence fail while it is locked.
_DATABASE_FIELDS = frozenset({"findScene", "findScenes"})


class StashTestServer(LoopbackHTTPService):
    """A fake Stash on 127.0.0.1 that serves ``findScene``/``findScenes`` over GraphQL.

    Modes (see :meth:`set_mode`):

    * ``"up"``: answers normally.
    * ``"locked"``: ``findScene`` and ``findScenes`` fail with the GraphQL error
      ``"database is locked"`` (HTTP 200), as Stash does while SQLite is locked; per
      GraphQL null propagation ``data`` becomes ``null`` for ``findScenes`` (non-null
      field) and ``{"findScene": null}`` for ``findScene``. ``version``, ``configuration``
      and introspection keep working, as they do not touch Stash's database.
    * ``"down"``: not listening (connection refused); open connections are closed.
    * ``"trickle"``: a request naming ``findScene(s)`` is answered one byte every
      ``trickle_interval`` seconds (headers too); other requests are answered normally.

    ``findScenes(scene_ids:)`` / ``findScenes(ids:)`` behave as in real Stash: the whole
    query fails with ``"scene with id N not found"`` if any id is missing, paging is
    ignored and the order given is kept. ``strict_ids=False`` relaxes that (the scenes that
    exist, sorted by id, paged by ``filter``). As in Stash, an empty id list means
    "no id restriction". Of ``scene_filter`` only the ``id`` criterion is applied (e.g.
    ``{id: {value: 1, value2: 1000, modifier: BETWEEN}}``, which real Stash answers with
    the ids that exist); ``q`` matches titles; ``sort: "title"`` or else by id.

    Example:
        >>> with StashTestServer(scenes=range(1, 11)) as stash:  # doctest: +SKIP
        ...     client = StashInterface(stash.connection())
        ...     client.find_scene(3)["title"]
        'Scene 3'
    """

    handler_class = StashRequestHandler

    def __init__(
        self,
        *,
        api_key: str | None = None,
        scenes: Iterable[int] = (),
        version: str = "v0.27.2",
        host: str = "127.0.0.1",
        initial_mode: str = "up",
        strict_ids: bool = True,
        session_cookie: str | None = None,
        plugin_settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Describe the server; call :meth:`start` (or use ``with``) to run it.

        Args:
            api_key: If set, every request needs this ``ApiKey`` header (else HTTP 401),
                and ``configuration { general { apiKey } }`` reports it.
            scenes: Ids of scenes to create, titled ``"Scene <id>"``.
            version: Reported ``version { version }``.
            host: Loopback address to bind.
            initial_mode: Mode at start; ``"down"`` reserves the port without listening.
            strict_ids: Fail ``findScenes`` on a missing id, as real Stash does (False: lenient).
            session_cookie: If set, a request carrying the cookie ``session=<this>`` is let in
                (as Stash lets in the plugins it runs) even without the API key; with
                neither configured every request is let in.
            plugin_settings: ``configuration { plugins }``: plugin id -> its settings.

        Raises:
            ValueError: Unknown mode or a bad scene id.
        """
        super().__init__(host=host)
        _check_mode(initial_mode)
        self._mode = initial_mode  # read by handlers without a lock (a str swap is atomic)
        self._api_key = api_key
        self._session_cookie = session_cookie
        self._plugin_settings: dict[str, dict[str, Any]] = {
            plugin_id: dict(values) for plugin_id, values in (plugin_settings or {}).items()
        }
        self.version = version
        self.strict_ids = strict_ids
        self.trickle_interval = 2.0  # seconds between two bytes of a "trickle" answer
        self._scenes = SceneStore()
        self._settings_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        # graphql-core takes plain functions or objects with ``resolve``; it silently skips bound methods.
        self._middleware = MiddlewareManager(RootFieldMiddleware(self))
        self.add_scenes(scenes)

    # -- connection details -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The GraphQL endpoint, e.g. ``http://127.0.0.1:40213/graphql``."""
        return f"http://{self.host}:{self.port}/graphql"

    @property
    def api_key(self) -> str | None:
        """The required ``ApiKey`` header value, or None if none is required."""
        return self._api_key

    def connection(self) -> dict[str, Any]:
        """The connection dict ``stashapi.stashapp.StashInterface`` takes.

        Returns:
            ``{"scheme": "http", "host": ..., "port": ...}`` plus ``"ApiKey"`` when one is
            configured; add a ``"Logger"`` entry to keep stashapi off stderr.
        """
        conn: dict[str, Any] = {"scheme": "http", "host": self.host, "port": self.port}
        if self._api_key:
            conn["ApiKey"] = self._api_key
        return conn

    @property
    def session_cookie(self) -> str | None:
        """The ``session`` cookie value that lets a request in, or None."""
        return self._session_cookie

    def plugin_connection(self, plugin_dir: str = "", config_dir: str = "") -> dict[str, Any]:
        """The ``server_connection`` object Stash writes to a plugin's standard input.

        Args:
            plugin_dir: The folder of the plugin's manifest (``PluginDir``).
            config_dir: Stash's configuration folder (``Dir``).
        """
        cookie = None
        if self._session_cookie:
            cookie = {"Name": "session", "Value": self._session_cookie, "Path": "", "Domain": "", "MaxAge": 0,
                      "Secure": False, "HttpOnly": False, "SameSite": 0, "Raw": "", "Unparsed": None}
        return {"Scheme": "http", "Host": self.host, "Port": self.port, "SessionCookie": cookie,
                "Dir": config_dir, "PluginDir": plugin_dir}

    def set_plugin_settings(self, plugin_id: str, settings: dict[str, Any] | None) -> None:
        """Replace one plugin's settings (None removes them, as for a plugin never configured)."""
        with self._settings_lock:
            if settings is None:
                self._plugin_settings.pop(plugin_id, None)
            else:
                self._plugin_settings[plugin_id] = dict(settings)

    # -- modes ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The current mode: ``"up"``, ``"locked"``, ``"down"`` or ``"trickle"``."""
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Switch mode; takes effect for the next request.

        Going ``"down"`` closes the listening socket and every open connection before it
        returns; leaving ``"down"`` listens again on the same port.

        Args:
            mode: ``"up"``, ``"locked"``, ``"down"`` or ``"trickle"``.

        Raises:
            ValueError: Unknown mode.
        """
        _check_mode(mode)
        with self._state_lock:
            self._mode = mode
            self._set_listening(mode != "down")
        LOGGER.debug("%r mode is now %s", self, mode)

    def _listening_wanted(self) -> bool:
        return self._mode != "down"

    # -- scenes -------------------------------------------------------------------------------

    def add_scene(self, scene_id: int, **fields: Any) -> dict[str, Any]:
        """Create or replace one scene (thread-safe).

        Args:
            scene_id: Positive integer id.
            **fields: ``Scene`` fields to set (``title``, ``code``, ``details``, ``urls``,
                ``date``, ``rating100``, ``organized``, ``o_counter``, ``created_at``,
                ``updated_at``); the rest get defaults, the title ``"Scene <id>"``.

        Returns:
            A copy of the stored scene, as GraphQL would return it.

        Raises:
            ValueError: ``scene_id`` is not a positive integer.
            TypeError: An unknown field was given.
        """
        return self._scenes.add(scene_id, **fields)

    def add_scenes(self, scene_ids: Iterable[int]) -> None:
        """Create or replace many scenes with default fields (thread-safe, fast).

        Args:
            scene_ids: Positive integer ids.

        Raises:
            ValueError: An id is not a positive integer (no scene is added then).
        """
        self._scenes.add_many(scene_ids)

    def delete_scene(self, scene_id: int) -> bool:
        """Delete one scene (thread-safe).

        Returns:
            True if the scene existed.
        """
        return self._scenes.delete(scene_id)

    def scene_ids(self) -> set[int]:
        """A copy of the ids of all scenes (thread-safe)."""
        return self._scenes.ids()

    # -- statistics -----------------------------------------------------------------------------

    @property
    def operation_counts(self) -> Counter[str]:
        """How often each root field was resolved, e.g. ``{"findScene": 10, "__schema": 1}``.

        A copy, taken under a lock; aliased fields count once per alias.
        """
        with self._counts_lock:
            return Counter(self._counts)

    def reset_counts(self) -> None:
        """Zero :attr:`operation_counts` (the request count is left alone)."""
        with self._counts_lock:
            self._counts.clear()

    # -- GraphQL -------------------------------------------------------------------------------

    def _count_root_field(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1
        if self._mode == "locked" and name in _DATABASE_FIELDS:
            raise GraphQLError(DATABASE_LOCKED_MESSAGE)

    def _authorized(self, api_key: str | None, cookie_header: str | None) -> bool:
        return credentials_accepted(self._api_key, self._session_cookie, api_key, cookie_header)

    def _execute(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Run one GraphQL request; return the HTTP status and the JSON payload."""
        return execute_graphql(body, self, self._middleware)

    # StashBackend: called by the resolvers in ``stash_schema()``, with this server as root_value.

    def resolve_version(self) -> dict[str, Any]:
        """``Query.version``."""
        return {"version": self.version, "hash": "f00dcafe1", "build_time": "2024-01-01 00:00:00"}

    def resolve_configuration(self) -> dict[str, Any]:
        """``Query.configuration``: only ``general.apiKey``, ``""`` when none is set."""
        return {"general": {"apiKey": self._api_key or ""}}

    def resolve_plugin_settings(self, include: list[str] | None) -> dict[str, Any]:
        """``ConfigResult.plugins``: every plugin's settings, or only those of ``include``."""
        with self._settings_lock:
            settings = self._plugin_settings.items()
            return {plugin_id: dict(values) for plugin_id, values in settings if include is None or plugin_id in include}

    def resolve_find_scene(self, scene_id: str | None, checksum: str | None) -> dict[str, Any] | None:
        """``Query.findScene``: the scene, or None (the test scenes have no checksums)."""
        return None if scene_id is None else self._scenes.get(parse_id(scene_id))

    def resolve_find_scenes(
        self,
        find_filter: dict[str, Any] | None,
        scene_filter: dict[str, Any] | None,
        scene_ids: list[int] | None,
        ids: list[str] | None,
    ) -> dict[str, Any]:
        """``Query.findScenes``; ``ids`` wins over ``scene_ids``, either over the filters (as in Stash)."""
        find_filter = find_filter or {}
        wanted: list[int] = parse_id_list(ids) if ids else list(scene_ids or ())
        if wanted:
            return self._scenes.find_many(wanted, find_filter, strict=self.strict_ids)
        return self._scenes.find_filtered(find_filter, (scene_filter or {}).get("id"))


def _check_mode(mode: str) -> None:
    if mode not in STASH_MODES:
        raise ValueError(f"unknown Stash mode {mode!r}; expected one of {sorted(STASH_MODES)}")
