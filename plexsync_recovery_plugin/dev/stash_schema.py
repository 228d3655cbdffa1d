"""The GraphQL schema :class:`~.stash_server.StashTestServer` serves: a subset of Stash's own.

Why a subset of the real thing: ``stashapi`` introspects the schema when it connects and
builds its query fragments (``...Scene``) from what it finds, so types and field names must
be Stash's, letter for letter (checked against ``graphql/schema/schema.graphql`` and
``graphql/schema/types/{scene,filters,version,config,scalars}.graphql`` in stashapp/stash).
Only what the plugin asks for is here: the ``version`` and ``configuration`` queries
``StashInterface`` runs on connect, ``findScene`` and ``findScenes``, and
``configuration { plugins }`` (the settings of Stash's plugins, which the Stash plugin reads).

The schema is built once per process (:func:`stash_schema`); its resolvers are thin and
delegate to the ``root_value`` of each request, a :class:`StashBackend`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Protocol

from graphql import GraphQLObjectType, GraphQLSchema, build_schema


__all__ = ["SCENE_FIELDS", "STASH_SDL", "StashBackend", "stash_schema"]

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
