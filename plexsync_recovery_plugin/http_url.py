"""Checking the Plex and Stash URLs a user configures, once, before anything connects."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["split_http_url"]


def split_http_url(url: str, what: str, example: str) -> SplitResult:
    """Split ``url`` and check it is ``http(s)://host[:port][/path]``.

    Args:
        url: The configured URL.
        what: Whose URL it is (``"Plex"``), for the message.
        example: A well-formed URL to show.

    Raises:
        ValueError: No http(s) scheme, no host, or a port that is not a number from 0 to
            65535; the message names the URL.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} URL must look like {example}, got {url!r}")
    return parts
