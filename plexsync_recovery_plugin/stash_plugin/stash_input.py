"""What Stash writes to a raw-interface plugin's standard input, parsed.

Stash sends one JSON object: ``server_connection`` (``Scheme``, ``Host``, ``Port``,
``SessionCookie`` - a Go ``http.Cookie`` with ``Name`` and ``Value`` -, ``Dir``: Stash's
configuration folder, ``PluginDir``: the folder of this plugin's manifest) and ``args``: a
task's ``defaultArgs`` (here ``mode``) or, for a hook, ``hookContext`` (``type`` such as
``Scene.Update.Post``, ``id``, ``input``). Standard library only (the hook reads it on every
scene update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PluginInput", "PluginInputError", "ServerConnection", "parse_plugin_input"]


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
        """Where Stash's plugins folder may be: above this plugin's folder, then ``<config>/plugins``."""
        found = [self.plugin_dir.parent] if self.plugin_dir is not None else []
        if self.config_dir is not None and self.config_dir / "plugins" not in found:
            found.append(self.config_dir / "plugins")
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


def _server(raw: Any) -> ServerConnection:
    if not isinstance(raw, dict):
        raise PluginInputError("server_connection is missing or not an object")
    cookie = raw.get("SessionCookie")
    port = raw.get("Port", 9999)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise PluginInputError(f"server_connection.Port is not a port number: {port!r}")
    config_dir, plugin_dir = _text(raw.get("Dir")), _text(raw.get("PluginDir"))
    return ServerConnection(
        scheme="https" if raw.get("Scheme") == "https" else "http",
        host=_text(raw.get("Host")) or "localhost",
        port=port,
        session_cookie=_text(cookie.get("Value")) if isinstance(cookie, dict) else None,
        config_dir=Path(config_dir) if config_dir else None,
        plugin_dir=Path(plugin_dir) if plugin_dir else None,
    )


def parse_plugin_input(text: str) -> PluginInput:
    """Parse Stash's JSON.

    Raises:
        PluginInputError: Not JSON, not an object, or ``server_connection`` unusable; the
            message names what is wrong (never the cookie).
    """
    try:
        data = json.loads(text) if text.strip() else None
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
    return PluginInput(server=_server(data.get("server_connection")), mode=_text(args.get("mode")), hook_type=hook_type)
