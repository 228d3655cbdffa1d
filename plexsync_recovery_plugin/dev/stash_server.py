"""A Stash GraphQL server stand-in on 127.0.0.1, good enough for the real ``stashapi`` client.

Why: the plugin asks Stash which scenes still exist, through ``stashapi``. Faking
``StashInterface`` would skip exactly the parts that break in production (its connect-time
introspection, its habit of turning GraphQL errors into ``{}``, HTTP failures), so this
server speaks real GraphQL over HTTP, executed by ``graphql-core`` against a subset of
Stash's schema (:mod:`.stash_schema`), with scenes kept in a dict so that a benchmark with
100,000 scenes stays fast. A test can switch it to ``"locked"`` (SQLite's "database is
locked", answered as Stash does) or ``"down"`` (connection refused) at run time, and can
count the root fields clients asked for.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError, MiddlewareManager

from .loopback_http import LoopbackHTTPService
from .stash_http import RootFieldMiddleware, StashRequestHandler, credentials_accepted, execute_graphql
from .stash_scenes import SceneStore, parse_id, parse_id_list

__all__ = ["DATABASE_LOCKED_MESSAGE", "STASH_MODES", "StashTestServer"]

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

    # StashBackend: called by the resolvers in stash_schema, with this server as root_value.

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
