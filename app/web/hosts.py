"""Which ``Host`` headers the daemon answers: the defence against DNS rebinding.

Binding to 127.0.0.1 keeps other machines out, not other web pages: a page on
``attacker.example`` can make its own name resolve to 127.0.0.1 a moment after it loaded
("DNS rebinding"); the browser then treats the daemon as same-origin with the attacker's page
and lets it read ``/api/state`` — positions, fills, log lines. What the attacker cannot change
is the ``Host`` header, which still names ``attacker.example``. So a request is answered only
when its ``Host`` is one of:

- ``127.0.0.1``, ``localhost`` or ``[::1]``, or the address the daemon was told to bind,
- the address the request actually arrived on (a daemon bound to 0.0.0.0 reached by IP),
- a name in the allow-list ``TRADER_HTTP_ALLOWED_HOSTS`` (comma-separated, e.g.
  ``trader.lan,10.0.0.5:8443``: a reverse proxy's name, a LAN name),

with the port the request arrived on (an entry with its own ``:port`` matches that port only).
Anything else — or no ``Host`` at all — is refused with 421 Misdirected Request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from config.settings import HTTP_ALLOWED_HOSTS_ENV as ALLOWED_HOSTS_ENV

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: addresses that mean "every interface" when bound; never a name a client should send
_WILDCARDS = frozenset({"0.0.0.0", "[::]", ""})
_DEFAULT_PORT = 80


def split_host(value: str) -> tuple[str, int | None]:
    """``name[:port]`` / ``[v6][:port]`` → (lower-case name without a trailing dot, port).
    A malformed port yields the name and ``-1`` (matches nothing)."""
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        name, rest = (text, "") if end < 0 else (text[: end + 1], text[end + 1 :])
    elif text.count(":") > 1:  # a bare IPv6 address, as a bind address is written
        name, rest = f"[{text}]", ""
    else:
        name, sep, port = text.partition(":")
        rest = f":{port}" if sep else ""
    if not rest:
        return name.rstrip("."), None
    port_text = rest.removeprefix(":")
    return name.rstrip("."), int(port_text) if port_text.isdigit() else -1


def allowed_hosts_from_env() -> list[str]:
    """The extra entries of ``TRADER_HTTP_ALLOWED_HOSTS`` (none when unset)."""
    raw = os.environ.get(ALLOWED_HOSTS_ENV, "")
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


@dataclass(frozen=True)
class HostAllowList:
    """``names`` match at the port a request arrived on; ``pinned`` (name, port) pairs match
    exactly."""

    names: frozenset[str]
    pinned: frozenset[tuple[str, int]]

    @classmethod
    def build(cls, bind_host: str, extra: Iterable[str] = ()) -> HostAllowList:
        names: set[str] = set(LOOPBACK_NAMES)
        pinned: set[tuple[str, int]] = set()
        for entry in [bind_host, *extra]:
            name, port = split_host(entry)
            if name in _WILDCARDS:
                continue
            if port is None:
                names.add(name)
            else:
                pinned.add((name, port))
        return cls(frozenset(names), frozenset(pinned))

    def allows(self, host: str | None, local: tuple[str, int] | None) -> bool:
        """Whether a request with ``Host: host`` that arrived on the local address ``local``
        (ip, port) may be answered."""
        if not host:
            return False
        name, port = split_host(host)
        port = _DEFAULT_PORT if port is None else port
        if (name, port) in self.pinned:
            return True
        if local is None or port != local[1]:
            return False
        arrived_on = split_host(local[0])[0]
        return name in self.names or name == arrived_on
