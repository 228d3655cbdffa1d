"""Secrets out of everything the package writes: the Plex token, the Stash API key, URL passwords, in any form.

A secret becomes known when a ``PlexConnection`` or ``StashConnection`` is created (and when
the command line resolves its settings): ``register_secret`` adds it to ``REDACTOR`` and
installs a log-record factory that masks every record of a logger under
``plexsync_recovery_plugin`` (the one handed to ``stashapi`` included) as it is created, so
it works whatever handlers the application configured (``logging.basicConfig()`` too).
A logger filter could not do that: a filter on the package logger does not see the
records of its child loggers.

A secret is matched in every form it takes in text (raw, ``repr``-escaped, JSON-escaped,
URL-encoded with ``%XX`` or ``+``), and only as a whole occurrence: never inside a longer
word, so masking never rewrites anything else. A secret shorter than
``MIN_SECRET_LENGTH`` cannot be told from ordinary text and is not matched at all.

Text is masked before it is cut: ``safe_excerpt``, the one way to shorten a text, masks,
cuts, then masks any ``MIN_SECRET_LENGTH``-character piece of a secret that survived (a text
stored already cut). A URL's password (``http://admin:pw@host``) is a secret whatever its
length: ``register_url`` makes every masked text show ``http://admin:***@host``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Callable, Iterable
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "PACKAGE_LOGGER",
    "REDACTOR",
    "SecretRedactor",
    "clean_secret",
    "redact_record",
    "register_secret",
    "register_url",
    "safe_excerpt",
    "secret_forms",
    "url_for_display",
]

MASK = "***"
#: Shorter secrets are never matched: ``k`` would mask every ``k`` of every text.
#: Real ones are far longer (a Plex token has 20 characters, a Stash API key is a JWT).
MIN_SECRET_LENGTH = 8
PACKAGE_LOGGER = "plexsync_recovery_plugin"

logger = logging.getLogger(__name__)

_WORD = "0-9A-Za-z_"
# Text just before a match: not a word character, unless that character ends an escape
# (%3D, \n, \x0a, \u000a) that the secret merely follows.
_BEFORE = (
    rf"(?:(?<![{_WORD}])|(?<=%[0-9A-Fa-f]{{2}})|(?<=\\[abfnrtv])"
    r"|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\U[0-9A-Fa-f]{8}))"
)
_AFTER = rf"(?![{_WORD}])"
_ESCAPED_PERCENT_HEX = re.compile(r"%([0-9A-F]{2})")
# The password of a URL: ``scheme://user:password@``; the user part stays visible.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?=@)")


def url_for_display(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (``http://admin:***@host``)."""
    return _URL_PASSWORD.sub(lambda match: match[0] if set(match["password"]) == {"*"} else match["head"] + MASK, url)


def clean_secret(value: str | None) -> str | None:
    """Strip surrounding whitespace (a secret read from a file ends in a newline); None when empty."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def secret_forms(secret: str) -> set[str]:
    """Every form ``secret`` can take in a text: raw, repr/ascii-escaped, JSON-escaped, URL-encoded."""
    forms = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    forms.update((quote(secret, safe=""), quote(secret), quote_plus(secret, safe=""), quote_plus(secret)))
    return {form for form in forms if form}


def _any_case_hex(match: re.Match[str]) -> str:
    return "%" + "".join(f"[{digit}{digit.lower()}]" if digit.isalpha() else digit for digit in match.group(1))


def _form_pattern(form: str) -> str:
    before = _BEFORE if re.match(rf"[{_WORD}]", form[0]) else ""
    after = _AFTER if re.match(rf"[{_WORD}]", form[-1]) else ""
    # %2F and %2f are the same escape: match either case of the hex digits.
    return before + _ESCAPED_PERCENT_HEX.sub(_any_case_hex, re.escape(form)) + after


class SecretRedactor:
    """Replaces every whole occurrence of a known secret, in any of its forms, by ``***``.

    Thread-safe: secrets may be added while other threads redact.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._pieces: frozenset[str] = frozenset()
        self._url_passwords = False
        self._lock = threading.Lock()
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"SecretRedactor({len(self._secrets)} secrets)"

    def __bool__(self) -> bool:
        return self._pattern is not None or self._url_passwords

    def add(self, *secrets: str | None) -> None:
        """Remember more secrets (stripped); empty ones and ones under ``MIN_SECRET_LENGTH`` are ignored."""
        fresh = {clean for clean in map(clean_secret, secrets) if clean and len(clean) >= MIN_SECRET_LENGTH}
        with self._lock:
            if fresh <= self._secrets:
                return
            self._secrets |= fresh
            forms = {form for secret in self._secrets for form in secret_forms(secret)}
            # Longest first: a secret inside a longer one (or a longer form) must not leave a tail.
            ordered = sorted(forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(_form_pattern(form) for form in ordered))
            size = MIN_SECRET_LENGTH  # every piece of that size of every form: what ``mask_pieces`` looks for
            self._pieces = frozenset(form[i : i + size] for form in forms for i in range(len(form) - size + 1))

    def add_url(self, url: str | None) -> None:
        """Remember the password of ``url`` (if it has one) and mask every URL's password from now on."""
        match = _URL_PASSWORD.search(url or "")
        if match is not None:
            self.add(match["password"])
            self._url_passwords = True

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds a secret."""
        pattern = self._pattern
        if self._url_passwords and _URL_PASSWORD.search(text) is not None:
            return True
        return pattern is not None and pattern.search(text) is not None

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        pattern = self._pattern
        if self._url_passwords and "://" in text:
            text = url_for_display(text)
        return text if pattern is None else pattern.sub(MASK, text)

    def mask_pieces(self, text: str) -> str:
        """Mask each run of ``MIN_SECRET_LENGTH``-character pieces of a secret: what a cut left of one.

        A run that is a whole secret is left alone: ``__call__`` masked every whole occurrence,
        so one still there is inside a longer word (another word).
        """
        size, spans = MIN_SECRET_LENGTH, list[list[int]]()  # [low, high) runs of overlapping or touching pieces
        for index in range(len(text) - size + 1):
            if text[index : index + size] in self._pieces:
                if spans and index <= spans[-1][1]:
                    spans[-1][1] = index + size
                else:
                    spans.append([index, index + size])
        for low, high in reversed(spans):
            if text[low:high] not in self._secrets:
                text = text[:low] + MASK + text[high:]
        return text

    def excerpt(self, text: str, limit: int) -> str:
        """``text`` masked, then cut to ``limit`` characters (ending in ``...``), then any piece of a secret masked."""
        masked = self(text)
        return self.mask_pieces(masked) if len(masked) <= limit else self.mask_pieces(masked[: max(0, limit - 3)]) + "..."

    def redact_data(self, value: Any) -> Any:
        """Return a copy of JSON-like data with every string (keys too) masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.redact_data(key): self.redact_data(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_data(item) for item in value]
        return value


#: The process's secrets: what every ``PlexConnection``/``StashConnection`` registered.
REDACTOR = SecretRedactor()


def redact_record(record: logging.LogRecord, redactor: SecretRedactor) -> None:
    """Mask the secrets of one log record in place: message, arguments, traceback and stack.

    A record without a secret is left exactly as it was. One with a secret gets its rendered,
    masked message as ``msg`` and no ``args``; a traceback with a secret becomes the masked
    ``exc_text`` (and ``exc_info`` is dropped, so no handler can render it again).
    """
    if not redactor:
        return
    try:
        message: str | None = record.getMessage()
    except Exception:  # logging reports the broken format string itself; keep it, masked
        message = None
    try:
        args_text = repr(record.args) if record.args else ""
    except Exception:
        args_text = ""
    if message is None:
        record.msg = redactor(str(record.msg))
        if redactor.contains(args_text):
            record.args = tuple(redactor(repr(arg)) for arg in _as_tuple(record.args))
    elif redactor.contains(message) or redactor.contains(args_text):
        record.msg, record.args = redactor(message), None
    if record.exc_info and record.exc_info[0] is not None:
        try:
            traceback_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        except Exception:
            traceback_text = ""
        if redactor.contains(traceback_text):
            record.exc_text, record.exc_info = redactor(traceback_text), None
    elif record.exc_text and redactor.contains(record.exc_text):
        record.exc_text = redactor(record.exc_text)
    if record.stack_info and redactor.contains(record.stack_info):
        record.stack_info = redactor(record.stack_info)


def _as_tuple(args: Any) -> tuple[Any, ...]:
    if isinstance(args, tuple):
        return args
    return tuple(args.values()) if isinstance(args, dict) else (args,)


def _is_package_record(name: str) -> bool:
    return name == PACKAGE_LOGGER or name.startswith(PACKAGE_LOGGER + ".")


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if REDACTOR and _is_package_record(record.name):
            redact_record(record, REDACTOR)
        return record

    make_record.plexsync_redacting = True  # type: ignore[attr-defined]
    return make_record


_install_lock = threading.Lock()


def _install_record_factory() -> None:
    """Wrap the current log-record factory (once; again if someone replaced it since)."""
    with _install_lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "plexsync_redacting", False):
            logging.setLogRecordFactory(_redacting_factory(current))


def safe_excerpt(text: str, limit: int) -> str:
    """The one way to shorten a text (an error, a server's answer) to ``limit`` characters: mask, cut, mask the rest."""
    return REDACTOR.excerpt(text, limit)


def register_url(url: str | None) -> None:
    """Mask the password written in ``url`` (``http://admin:pw@host``), and every URL's, in everything written."""
    if url and _URL_PASSWORD.search(url) is not None:
        REDACTOR.add_url(url)
        _install_record_factory()


def register_secret(secret: str | None, what: str = "secret") -> None:
    """Mask ``secret`` in every log record of the package from now on (and in the CLI's output).

    Args:
        secret: The token or key, already stripped; None or empty does nothing.
        what: What it is (``"Plex token"``), for the warning about a secret too short to mask.
    """
    if not secret:
        return
    if len(secret) < MIN_SECRET_LENGTH:
        logger.warning(
            "the %s is only %d characters long: too short to be told apart from other text, so it is"
            " not masked in logs (a real one has at least %d)",
            what,
            len(secret),
            MIN_SECRET_LENGTH,
        )
        return
    REDACTOR.add(secret)
    _install_record_factory()
