"""The plugin's settings: PlexSync's own, from Stash's configuration, unless this plugin overrides them.

PlexSync (plugin id ``Stash2Plex``) keeps ``plex_url`` and ``plex_token`` in Stash's plugin
settings; this plugin (id ``PlexSyncRecovery``) reads them from ``configuration { plugins }``
over the session Stash opened for it, so the user configures Plex once. This plugin's own
settings of the same names win when set; ``include_optional``, ``no_outage_casualties`` and
``request_timeout`` are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..http_url import DEFAULT_REQUEST_DEADLINE
from ..plexsync_paths import PLEXSYNC_PLUGIN_ID

__all__ = ["PLUGIN_ID", "RecoverySettings", "SETTINGS_QUERY", "SettingsError", "read_settings"]

#: This plugin's id in Stash: the name of its manifest file.
PLUGIN_ID = "PlexSyncRecovery"

SETTINGS_QUERY = "query PlexSyncRecoverySettings($ids: [ID!]) { configuration { plugins(include: $ids) } }"


class SettingsError(Exception):
    """A setting is missing or unusable; the message names it and where to set it."""


@dataclass(frozen=True)
class RecoverySettings:
    """What a recovery run needs to know besides Stash's connection.

    Attributes:
        plex_url: Plex's base URL.
        plex_token: Plex's token (never shown).
        include_optional: Also recover ``PlexTemporaryError`` and ``PlexNotFound`` entries.
        request_timeout: Most seconds one Plex or Stash request may take (see ``http_deadline``).
        outage_casualties: Recover an outage's ``PlexTemporaryError`` casualties by default
            (the setting ``no_outage_casualties`` turns it off).
    """

    plex_url: str
    plex_token: str = field(repr=False)
    include_optional: bool = False
    request_timeout: float = DEFAULT_REQUEST_DEADLINE
    outage_casualties: bool = True


def _setting(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _plugin_values(plugins: dict[str, Any], plugin_id: str) -> dict[str, Any]:
    values = plugins.get(plugin_id)
    return values if isinstance(values, dict) else {}


def read_settings(stash: Any) -> RecoverySettings:
    """Ask Stash for PlexSync's and this plugin's settings and combine them.

    Args:
        stash: Anything with stashapi's ``call_GQL(query, variables)`` (a ``StashConnection``).

    Raises:
        SettingsError: Stash answered without the settings, or ``plex_url``/``plex_token``
            is set nowhere (the message names the setting).
        StashUnavailable: Stash could not be asked.
    """
    answer = stash.call_GQL(SETTINGS_QUERY, {"ids": [PLEXSYNC_PLUGIN_ID, PLUGIN_ID]})
    try:  # stashapi turns a GraphQL error into {}
        plugins = answer["configuration"]["plugins"]
    except (KeyError, TypeError):
        raise SettingsError("Stash did not return the plugin settings (configuration { plugins })") from None
    plugins = plugins if isinstance(plugins, dict) else {}
    own, plexsync = _plugin_values(plugins, PLUGIN_ID), _plugin_values(plugins, PLEXSYNC_PLUGIN_ID)
    found = {}
    for name, label in (("plex_url", "Plex URL"), ("plex_token", "Plex Token")):
        value = _setting(own, name) or _setting(plexsync, name)
        if value is None:
            raise SettingsError(
                f"setting {name} ({label}) is not set: set it in {PLEXSYNC_PLUGIN_ID}'s plugin settings"
                f" in Stash (Settings > Plugins), or in {PLUGIN_ID}'s to override it"
            )
        found[name] = value
    return RecoverySettings(
        plex_url=found["plex_url"],
        plex_token=found["plex_token"],
        include_optional=own.get("include_optional") is True,
        request_timeout=_request_timeout(own.get("request_timeout")),
        outage_casualties=own.get("no_outage_casualties") is not True,
    )


def _request_timeout(value: Any) -> float:
    """The ``request_timeout`` setting in seconds: the default when unset (Stash stores 0 for an emptied number)."""
    if value in (None, "", 0):
        return DEFAULT_REQUEST_DEADLINE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SettingsError(
            f"setting request_timeout (Request timeout) must be a positive number of seconds, got {value!r}:"
            f" fix it in {PLUGIN_ID}'s plugin settings in Stash (Settings > Plugins)"
        )
    return float(value)
