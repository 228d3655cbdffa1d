"""Talking with Stash as a raw-interface plugin: its input, its log, and the plugin's settings.

Stash writes one JSON object to the plugin's standard input (``server_connection`` and
``args``), reads each stderr line as ``\\x01<level>\\x02<message>`` (``p`` is progress), and keeps
each plugin's settings in its configuration. Standard library only: the hook reads this on
every scene update. Every log line is masked before it is cut.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO
from urllib.parse import quote

from ..http_url import DEFAULT_REQUEST_DEADLINE
from ..plexsync_paths import PLEXSYNC_PLUGIN_ID, stash_plugins_dir
from ..redaction import REDACTOR, register_secret, safe_excerpt

__all__ = ['MAX_INPUT_CHARS', 'PluginInput', 'PluginInputError', 'ServerConnection', 'names_a_hook', 'parse_plugin_input', 'read_plugin_input', 'MASK', 'PACKAGE_LOGGER', 'StashLogHandler', 'install_stash_logging', 'stash_log_line', 'PLUGIN_ID', 'RecoverySettings', 'SETTINGS_QUERY', 'SettingsError', 'read_settings']


# ==== stash input ===============================================================================
# What Stash writes to a raw-interface plugin's standard input, parsed.
#
# Stash sends one JSON object: ``server_connection`` (``Scheme``, ``Host``, ``Port``,
# ``SessionCookie`` - a Go ``http.Cookie`` with ``Name`` and ``Value`` -, ``Dir``: Stash's
# configuration folder, ``PluginDir``: the folder of this plugin's manifest) and ``args``: a
# task's ``defaultArgs`` (here ``mode``) or, for a hook, ``hookContext`` (``type`` such as
# ``Scene.Update.Post``, ``id``, ``input``). Standard library only (the hook reads it on every
# scene update).

#: The most characters of standard input read. Stash's own input is a few hundred bytes (a
#: hook's ``input`` holds the fields of one scene update); anything bigger is not Stash's.
MAX_INPUT_CHARS = 1 << 20


class PluginInputError(ValueError):
    """Standard input is not the JSON object Stash sends a plugin."""


@dataclass(frozen=True)
class ServerConnection:
    """How to reach the Stash that runs the plugin.

    Attributes:
        scheme: ``http`` or ``https``.
        host: Stash's host (``0.0.0.0`` means this machine).
        port: Stash's port.
        session_cookie: The ``session`` cookie value Stash made for this run, or None.
        config_dir: Stash's configuration folder, or None.
        plugin_dir: This plugin's folder, or None.
    """

    scheme: str = "http"
    host: str = "localhost"
    port: int = 9999
    session_cookie: str | None = field(default=None, repr=False)
    config_dir: Path | None = None
    plugin_dir: Path | None = None

    @property
    def url(self) -> str:
        """Stash's base URL, e.g. ``http://localhost:9999``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host and not host.startswith("["):  # an IPv6 address
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def plugins_dirs(self) -> list[Path]:
        """Where Stash's plugins folder may be: above this plugin's folder, then Stash's configured one.

        Above this plugin's folder is Stash's plugins folder, or the sub-folder its package
        manager made for the source the plugin came from; Stash's configured folder is
        ``plugins_path`` in its ``config.yml`` (``<config>/plugins`` by default).
        """
        found = [self.plugin_dir.parent] if self.plugin_dir is not None else []
        if self.config_dir is not None:
            configured = stash_plugins_dir(self.config_dir)
            found.extend(folder for folder in (configured, self.config_dir / "plugins") if folder not in found)
        return found


@dataclass(frozen=True)
class PluginInput:
    """One run's input.

    Attributes:
        server: How to reach Stash.
        mode: The task's ``mode`` argument, or None.
        hook_type: The hook's trigger (``Scene.Update.Post`` ...), or None for a task.
    """

    server: ServerConnection
    mode: str | None = None
    hook_type: str | None = None

    @property
    def is_hook(self) -> bool:
        """Whether a hook (not a task) started this run."""
        return self.hook_type is not None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _path(raw: Any, name: str) -> Path | None:
    text = _text(raw)
    if text is not None and "\x00" in text:
        raise PluginInputError(f"server_connection.{name} is not a path: {text[:80]!r}")
    return Path(text) if text else None


def _server(raw: Any) -> ServerConnection:
    if not isinstance(raw, dict):
        raise PluginInputError("server_connection is missing or not an object")
    cookie = raw.get("SessionCookie")
    port = raw.get("Port", 9999)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise PluginInputError(f"server_connection.Port is not a port number: {repr(port)[:80]}")
    return ServerConnection(
        scheme="https" if raw.get("Scheme") == "https" else "http",
        host=_text(raw.get("Host")) or "localhost",
        port=port,
        session_cookie=_text(cookie.get("Value")) if isinstance(cookie, dict) else None,
        config_dir=_path(raw.get("Dir"), "Dir"),
        plugin_dir=_path(raw.get("PluginDir"), "PluginDir"),
    )


def read_plugin_input(stream: TextIO) -> str:
    """Read standard input, one character more than ``MAX_INPUT_CHARS`` at most (the parse refuses that).

    Raises:
        PluginInputError: The input cannot be read or decoded.
    """
    try:
        return stream.read(MAX_INPUT_CHARS + 1)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise PluginInputError(f"standard input cannot be read: {type(error).__name__}: {error}") from None


def names_a_hook(text: str) -> bool:
    """Whether input that could not be parsed still names a hook (Stash's ``hookContext``).

    A hook must answer and exit 0 even on input it cannot read; this tells it apart from a
    task without parsing.
    """
    return '"hookContext"' in text


def parse_plugin_input(text: str) -> PluginInput:
    """Parse Stash's JSON; input of any shape gives a ``PluginInput`` or a ``PluginInputError``.

    Raises:
        PluginInputError: Longer than ``MAX_INPUT_CHARS``, not JSON (nested too deeply
            included), not an object, or ``server_connection`` unusable; the one-line message
            names what is wrong (never the cookie).
    """
    if len(text) > MAX_INPUT_CHARS:
        raise PluginInputError(f"standard input is longer than {MAX_INPUT_CHARS:,} characters: not what Stash sends")
    try:
        data = json.loads(text) if text.strip() else None
    except RecursionError:  # the C decoder's own limit: a few thousand levels
        raise PluginInputError("standard input is not JSON Stash sends: it is nested too deeply") from None
    except ValueError as error:
        raise PluginInputError(f"standard input is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise PluginInputError("standard input is not the JSON object Stash sends a plugin")
    args = data.get("args")
    args = args if isinstance(args, dict) else {}
    hook = args.get("hookContext")
    hook_type = None
    if isinstance(hook, dict):
        hook_type = _text(hook.get("type")) or "unknown"
    elif "hookContext" in args:  # a hook's input, though not the shape Stash writes
        hook_type = "unknown"
    return PluginInput(server=_server(data.get("server_connection")), mode=_text(args.get("mode")), hook_type=hook_type)


# ==== stash log =================================================================================
# Writing to Stash's log and task bar the way Stash reads a plugin's stderr.
#
# Stash reads each stderr line of a plugin as ``\x01<level>\x02<message>``, where the level
# is ``t``, ``d``, ``i``, ``w``, ``e`` (trace .. error) or ``p`` (progress: a number from 0
# to 1 shown in the task bar). This is the protocol ``stashapi.log`` writes; it is written
# here with the standard library because the hook's quick check must not import stashapi.
#
# Every line passes through the package's redaction (Plex token, Stash session cookie, URL
# passwords, in every form), masked before it is cut, so no log line of the plugin can show one.

PACKAGE_LOGGER = "plexsync_recovery_plugin"
MASK = "***"

_START, _END = "\x01", "\x02"
_LEVELS = ((logging.ERROR, "e"), (logging.WARNING, "w"), (logging.INFO, "i"), (logging.DEBUG, "d"))
#: Stash reads a line into a 64 KiB buffer; longer lines are cut to this.
_MAX_LINE = 64000


def _level_letter(levelno: int) -> str:
    return next((letter for threshold, letter in _LEVELS if levelno >= threshold), "t")


def stash_log_line(letter: str, text: str) -> str:
    """One protocol line (without a newline in the text) for the level ``letter``."""
    flat = " ".join(text.split()) if any(ch in text for ch in "\r\n") else text
    return f"{_START}{letter}{_END}{flat if len(flat) <= _MAX_LINE else safe_excerpt(flat, _MAX_LINE)}\n"


class StashLogHandler(logging.Handler):
    """A ``logging`` handler that writes Stash's protocol lines, secrets masked.

    A traceback (``exc_info``) is written as one line per traceback line at the record's level.

    Args:
        stream: Where to write; ``sys.stderr`` at write time when None.
        secrets: Values to mask in every line.
    """

    def __init__(self, stream: TextIO | None = None, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._stream = stream
        self._secrets: list[str] = []
        self.add_secrets(*secrets)

    def add_secrets(self, *secrets: str | None) -> None:
        """Mask these values too (empty ones are ignored), in every form ``redaction`` knows.

        The package's redactor skips values too short to tell from text; this handler's own
        lines still mask them, raw and URL-encoded.
        """
        for secret in secrets:
            if secret:
                register_secret(secret)
                self._secrets.extend(form for form in (secret, quote(secret, safe="")) if form not in self._secrets)
        self._secrets.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        text = REDACTOR(text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as protocol lines."""
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            letter = _level_letter(record.levelno)
            stream = self._stream or sys.stderr
            for line in self.mask(message).splitlines() or [""]:
                stream.write(stash_log_line(letter, line))
            stream.flush()
        except Exception:
            self.handleError(record)

    def progress(self, fraction: float) -> None:
        """Show ``fraction`` (clamped to 0..1) in Stash's task bar."""
        stream = self._stream or sys.stderr
        stream.write(stash_log_line("p", f"{min(1.0, max(0.0, fraction)):.3f}"))
        stream.flush()


def install_stash_logging(
    level: int = logging.INFO, stream: TextIO | None = None, secrets: Iterable[str | None] = ()
) -> StashLogHandler:
    """Send the package's log records (and plexapi's warnings) to Stash's log; return the handler."""
    handler = StashLogHandler(stream, secrets)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    plexapi = logging.getLogger("plexapi")
    plexapi.addHandler(handler)
    plexapi.setLevel(max(level, logging.WARNING))
    plexapi.propagate = False
    return handler


# ==== plugin settings ===========================================================================
# The plugin's settings: PlexSync's own, from Stash's configuration, unless this plugin overrides them.
#
# PlexSync (plugin id ``Stash2Plex``) keeps ``plex_url`` and ``plex_token`` in Stash's plugin
# settings; this plugin (id ``PlexSyncRecovery``) reads them from ``configuration { plugins }``
# over the session Stash opened for it, so the user configures Plex once. This plugin's own
# settings of the same names win when set; ``include_optional``, ``no_outage_casualties`` and
# ``request_timeout`` are its own.

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
        catch_up_days: On the hook's first start in a data directory, outages that ended this
            many days back or less are recovered (0: none). Not set: ``outages.CATCH_UP_DAYS``,
            which this default repeats so that the hook's quick check does not load that module.
    """

    plex_url: str
    plex_token: str = field(repr=False)
    include_optional: bool = False
    request_timeout: float = DEFAULT_REQUEST_DEADLINE
    outage_casualties: bool = True
    catch_up_days: float = 7.0


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
        catch_up_days=_catch_up_days(own.get("catch_up_days")),
    )


def _catch_up_days(value: Any) -> float:
    """The ``catch_up_days`` setting: the default when not set, 0 to turn the catch-up off."""
    from ..outages import CATCH_UP_DAYS, check_catch_up_days

    if value in (None, ""):
        return float(CATCH_UP_DAYS)
    try:
        return check_catch_up_days(value)
    except ValueError:
        raise SettingsError(
            f"setting catch_up_days (Catch-up days) must be a number of days, 0 or more, got {value!r}:"
            f" fix it in {PLUGIN_ID}'s plugin settings in Stash (Settings > Plugins)"
        ) from None


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
