"""Checking the Plex and Stash URLs a user configures, once, before anything connects; how long a request may take.

Kept free of ``requests`` so that the command line can name the default without loading it.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["DEFAULT_REQUEST_DEADLINE", "split_http_url"]

#: Seconds a whole Plex or Stash request may take, answer included, unless configured (see
#: ``http_deadline``). Far above a healthy answer (Stash's largest, a thousand scene ids, takes
#: well under a second) and well under what would leave a recovery holding its lock for minutes.
DEFAULT_REQUEST_DEADLINE = 30.0


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
