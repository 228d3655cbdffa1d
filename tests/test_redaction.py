"""Secrets are masked in every form, in every log record of the package, and nothing else is touched.

The library tests log as an application would with ``logging.basicConfig()``: a plain
``StreamHandler`` on the root logger, no filter or formatter of ours.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Iterator
from urllib.parse import quote, quote_plus

import pytest

from plexsync_recovery_plugin import PlexConnection, StashConnection
from plexsync_recovery_plugin.plex.health import check_plex_health
from plexsync_recovery_plugin.redaction import MASK, REDACTOR, SecretRedactor, register_secret
from plexsync_recovery_plugin.testing import PlexTestServer, StashTestServer

ODD_SECRET = 'tok"en/+ é\\x-9Z'  # a quote, a slash, a plus, a space, non-ASCII, a backslash


def _forms(secret: str) -> list[str]:
    """How the secret appears in a text, without the quotes around repr and JSON forms."""
    mixed_hex = quote(secret, safe="").replace("%2F", "%2f")  # %2f and %2B in one text
    return [
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        mixed_hex,
    ]


@pytest.mark.parametrize("form", _forms(ODD_SECRET))
def test_every_form_of_a_secret_is_masked(form):
    redactor = SecretRedactor([ODD_SECRET])
    masked = redactor(f"GET /x?X-Plex-Token={form}&a=1 failed: '{form}'")
    assert masked == f"GET /x?X-Plex-Token={MASK}&a=1 failed: '{MASK}'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("xabcd1234", "xabcd1234"),  # inside a longer word: another word, left alone
        ("abcd1234x", "abcd1234x"),
        ("abcd1234_2", "abcd1234_2"),
        ("id=abcd12345", "id=abcd12345"),
        ("key=abcd1234&x", "key=***&x"),
        ("'abcd1234\\n'", "'***\\n'"),  # repr of the secret read with its newline
        ("'line\\nabcd1234'", "'line\\n***'"),  # after an escape, not after a letter
        ("q=%3Dabcd1234", "q=%3D***"),  # after a %-escape
        ('{"k": "\\u00e9abcd1234"}', '{"k": "\\u00e9***"}'),
    ],
)
def test_only_whole_occurrences_are_masked(text, expected):
    assert SecretRedactor(["abcd1234"])(text) == expected


def test_a_secret_inside_another_leaves_no_tail():
    redactor = SecretRedactor(["abcd1234", "abcd1234-efgh5678"])
    assert redactor("a=abcd1234-efgh5678 b=abcd1234") == "a=*** b=***"


def test_a_secret_too_short_is_never_matched(caplog):
    redactor = SecretRedactor(["k", "short"])
    assert not redactor
    assert redactor("skipped_already_queued, short") == "skipped_already_queued, short"
    with caplog.at_level(logging.WARNING, logger="plexsync_recovery_plugin.redaction"):
        register_secret("kk", "Stash API key")
    assert "Stash API key is only 2 characters long" in caplog.text
    assert REDACTOR("kk") == "kk"


@pytest.fixture
def plain_logging() -> Iterator[io.StringIO]:
    """What ``logging.basicConfig(level=DEBUG)`` sets up: a bare handler on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_a_server_error_quoting_the_key_is_masked_with_plain_logging(plain_logging):
    key = "stashKEY-quoted-7f3e91"
    with StashTestServer(api_key=key, scenes=[1]) as server:
        conn = StashConnection(server.url, key + "\n", timeout=5.0)  # read from a file: a trailing newline
        try:
            # Stash quotes a bad id back ("strconv.Atoi: parsing ..."); stashapi logs it through our logger.
            assert conn.call_GQL(f'query {{ findScene(id: "{key}") {{ id }} }}') == {"findScene": None}
        finally:
            conn.close()
    text = plain_logging.getvalue()
    assert f"plexsync_recovery_plugin.stashapi ERROR GRAPHQL_ERROR:['findScene'] strconv.Atoi: parsing \"{MASK}\"" in text
    assert key not in text


def test_a_plex_token_with_a_newline_works_and_never_reaches_the_log(plain_logging):
    token = "plexTOKEN-newline-5c1d"
    with PlexTestServer(token=token) as server:
        conn = PlexConnection(server.url, token + "\r\n", timeout=5.0)
        try:
            healthy, _ = check_plex_health(conn)
        finally:
            conn.close()
    assert healthy
    assert token not in plain_logging.getvalue()


def test_every_package_logger_is_masked_even_one_made_later(plain_logging):
    secret = "late-logger-secret-42"
    register_secret(secret, "test secret")
    log = logging.getLogger("plexsync_recovery_plugin.made.after.registration")
    log.warning("raw %s, repr %r, url %s, json %s", secret, secret + "\n", quote(secret, safe=""), json.dumps(secret))
    try:
        raise ValueError(f"failed with {secret}")
    except ValueError:
        log.exception("crash")
    log.info("skipped_already_queued %d", 3)  # no secret: left exactly as it was
    text = plain_logging.getvalue()
    assert secret not in text and quote(secret, safe="") not in text
    assert f"raw {MASK}, repr '{MASK}\\n', url {MASK}, json \"{MASK}\"" in text
    assert f"ValueError: failed with {MASK}" in text
    assert "skipped_already_queued 3" in text


def test_records_without_a_secret_are_not_rewritten():
    register_secret("unrelated-secret-0001", "test secret")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("plexsync_recovery_plugin.tests.untouched")
    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("recovered %d of %d", 3, 4)
        log.info("key is %s", "unrelated-secret-0001")
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    untouched, masked = records
    assert (untouched.msg, untouched.args) == ("recovered %d of %d", (3, 4))
    assert (masked.msg, masked.args) == (f"key is {MASK}", None)


def test_an_excerpt_is_masked_before_it_is_cut_and_keeps_no_piece_of_a_secret():
    redactor = SecretRedactor(["abcdefghijklmnopqrst"])
    text = "x" * 29 + " abcdefghijklmnopqrst tail"
    for limit in range(20, 60):
        kept = redactor.excerpt(text, limit)
        assert len(kept) <= limit
        assert not any("abcdefghijklmnopqrst"[i : i + 8] in kept for i in range(13)), (limit, kept)
    # A message someone else already cut: the piece that survived is masked too; a whole one inside a word is not.
    assert redactor.excerpt("token=abcdefghijklmnopqrs", 80) == "token=***"
    assert redactor.excerpt("xabcdefghijklmnopqrstx", 80) == "xabcdefghijklmnopqrstx"


def test_a_password_written_in_a_url_is_masked_whatever_its_length():
    redactor = SecretRedactor()
    redactor.add_url("http://admin:pw@plex:32400")
    assert redactor("see http://admin:pw@plex:32400/x and apprise://u:other@h") == (
        "see http://admin:***@plex:32400/x and apprise://u:***@h"
    )
    assert redactor("http://plex:32400/ has no password") == "http://plex:32400/ has no password"
