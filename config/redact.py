"""What a secret looks like, defined once, and the one function that removes secrets from text.

Two kinds of evidence, because neither is enough alone:

- **known values**: the credentials this process actually holds (Kite API key, API secret,
  access token, login request token, the HTTP control token) are registered when they are
  loaded, so a value is removed wherever it appears — also bare, with no ``token=`` around it,
  as when Kite echoes the ``Authorization`` header (``api_key:access_token``) in an error body;
- **patterns**: ``key=value`` / ``key: value`` pairs whose key looks like a secret (``token``,
  ``secret``, ``password``, ``api_key``, ``access``, ``authorization``), for secrets this process
  never loaded (a library's URL, someone else's token in a message).

``scrub`` applies both. It is used where text from outside enters the engine (a ``KiteError`` is
scrubbed when it is built) and again at every sink: the log renderer (``engine.log``), the
CLI's error line, the run's stored ``error``. It lives in the lowest layer so that every layer
can use the same definition.
"""

from __future__ import annotations

import re
import threading

#: a key containing any of these names a secret (log fields, ``key=value`` in text)
SECRET_KEYS = ("token", "secret", "password", "api_key", "access", "authorization")
#: what a removed secret reads as
MASK = "***"
#: shorter values are not registered: Kite's shortest credential (the API key) has 16
#: characters, control tokens at least 16, and removing every occurrence of a short everyday
#: string ("secret", say) would mangle unrelated text — key names included
MIN_SECRET_CHARS = 12

_SECRET_WORDS = "|".join(map(re.escape, SECRET_KEYS))
#: ``<secret-looking key><= or :><value>`` in free text. The value is a quoted string or a bare
#: word, after an optional scheme (``Authorization: token api_key:access_token``, ``Bearer …``).
#: A bare value never starts with a backslash, so an already-redacted, JSON-escaped ``\"***\"``
#: is left alone when the rendered line is scrubbed again.
_SECRET_IN_TEXT = re.compile(
    rf"(?P<key>[\w.-]*(?:{_SECRET_WORDS})[\w.-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*)"
    r"(?P<scheme>(?:token|bearer|basic)\s+)?"
    r"(?:(?P<quote>[\"'])[^\"']*(?P=quote)|[^\s,;&\"'}\]\\]+)",
    re.IGNORECASE,
)

_lock = threading.Lock()
#: registered values, longest first (a value that contains another is removed whole); replaced
#: as a whole tuple under the lock, so ``scrub`` in any thread reads one consistent version
_known: tuple[str, ...] = ()


def register_secret(*values: str | None) -> None:
    """Remember credential values so ``scrub`` removes them wherever they appear. ``None``,
    empty and too-short values are ignored (see ``MIN_SECRET_CHARS``)."""
    global _known
    fresh = {v for v in values if v and len(v) >= MIN_SECRET_CHARS}
    if not fresh - set(_known):
        return
    with _lock:
        _known = tuple(sorted(set(_known) | fresh, key=lambda v: (-len(v), v)))


def is_secret_key(key: str) -> bool:
    """True for a field name that holds a secret (``access_token``, ``X-Api-Secret``, …)."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEYS)


def _masked(match: re.Match[str]) -> str:
    quote = match["quote"] or ""
    return f"{match['key']}{match['sep']}{match['scheme'] or ''}{quote}{MASK}{quote}"


def scrub(text: str) -> str:
    """``text`` without secrets: every registered value, and the value of every secret-looking
    ``key=value`` pair, replaced by ``***``. Idempotent."""
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    return _SECRET_IN_TEXT.sub(_masked, text)
