"""Order tags: how a Kite order is recognised as one of ours, across retries and restarts.

Kite lets a client attach a ``tag`` (at most 20 alphanumeric characters) to an order and shows
it in the order book and in every order update. The tag of an engine order is a stable hash of
its ``order_id`` (and of a namespace, usually the run id, because order ids such as ``o1`` repeat
from run to run), so the same order always carries the same tag. That makes placement
idempotent: after a timeout, or after a restart, the order book is searched for the tag before
anything is placed again. The prefix marks the engine's orders apart from manual ones.
"""

from __future__ import annotations

import hashlib

MAX_TAG_LENGTH = 20
DEFAULT_TAG_PREFIX = "nt"
_HASH_CHARS_MIN = 12  # 48 bits: collisions among one day's orders are not a practical concern


class OrderTagError(ValueError):
    """A tag prefix Kite would refuse or that leaves too little room for the hash."""


def check_tag_prefix(prefix: str) -> str:
    if not prefix.isascii() or not prefix.isalnum():
        raise OrderTagError(f"order tag prefix {prefix!r} must be ASCII letters and digits")
    if len(prefix) > MAX_TAG_LENGTH - _HASH_CHARS_MIN:
        raise OrderTagError(
            f"order tag prefix {prefix!r} is too long: at most "
            f"{MAX_TAG_LENGTH - _HASH_CHARS_MIN} characters"
        )
    return prefix


def order_tag(order_id: str, namespace: str = "", prefix: str = DEFAULT_TAG_PREFIX) -> str:
    """``prefix`` + hex digest of ``namespace``/``order_id``, exactly 20 characters."""
    check_tag_prefix(prefix)
    digest = hashlib.blake2b(f"{namespace}\x1f{order_id}".encode(), digest_size=16).hexdigest()
    return prefix + digest[: MAX_TAG_LENGTH - len(prefix)]


def order_tags(kite_order: dict[str, object]) -> list[str]:
    """Every tag of a Kite order dict: ``tag`` and the newer ``tags`` list."""
    found: list[str] = []
    tag = kite_order.get("tag")
    if isinstance(tag, str) and tag:
        found.append(tag)
    tags = kite_order.get("tags")
    if isinstance(tags, list):
        found.extend(t for t in tags if isinstance(t, str) and t and t not in found)
    return found
