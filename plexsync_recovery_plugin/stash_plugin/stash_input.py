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
from typing import Any, TextIO

__all__ = [
    "MAX_INPUT_CHARS",
    "PluginInput",
    "PluginInputError",
    "ServerConnection",
    "names_a_hook",
    "parse_plugin_input",
    "read_plugin_input",
]

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
