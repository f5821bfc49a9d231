"""The asyncio event bus.

Publishing awaits delivery to every subscriber of the event's type, in subscription order, before
returning: a handler that publishes in turn is fully handled depth-first, so one bar's whole
consequence (features → strategy → risk → broker → portfolio) happens inside one ``publish``.
Nothing is queued, so nothing can be dropped.

Handlers may be coroutine functions or plain functions; a plain one may return an awaitable when,
this time, it has async work (publishing, say). Whatever a handler returns that is not ``None``
is awaited before the next handler runs. On the replay path a bar costs a few microseconds, and
a coroutine per handler per bar would double that.

A handler's exception stops the publish and surfaces as ``HandlerError`` naming the handler and
the event; the backtest runner stops on it, the daemon logs it and halts trading.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any], Awaitable[None] | None]


class HandlerError(RuntimeError):
    """A subscriber failed while handling ``event``; the original exception is ``__cause__``."""

    def __init__(self, handler: Handler, event: Any, cause: BaseException) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        kind = type(event).__name__
        seq = getattr(event, "seq", "?")
        ts = getattr(event, "ts", None) if hasattr(type(event), "ts") else None
        when = f" at {ts}" if ts is not None else ""
        super().__init__(
            f"{name} failed on {kind} seq={seq}{when}: {type(cause).__name__}: {cause}"
        )
        self.handler = handler
        self.event = event


class EventBus:
    """Typed publish/subscribe with a shared sequence counter."""

    def __init__(self) -> None:
        self._routes: dict[type, list[Handler]] = {}
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        """The next sequence number; publishers stamp events with it at construction."""
        return next(self._seq)

    def continue_after(self, seq: int) -> None:
        """A resumed run: new events sort after everything already stored."""
        self._seq = itertools.count(seq + 1)

    def subscribe(self, event_type: type, handler: Handler) -> None:
        self._routes.setdefault(event_type, []).append(handler)

    def subscribers(self, event_type: type) -> list[Handler]:
        return list(self._routes.get(event_type, ()))

    async def publish(self, event: Any) -> None:
        pending = self.deliver(event)
        if pending is not None:
            await pending

    def deliver(self, event: Any) -> Awaitable[None] | None:
        """Deliver ``event``; returns an awaitable for the rest of the delivery if some handler
        has async work, else ``None`` (all handlers done). Hot loops call this directly to skip
        a coroutine per event; everyone else awaits ``publish``."""
        routes = self._routes.get(type(event))
        if routes is None:
            return None
        index = 0
        try:
            for handler in routes:
                pending = handler(event)
                if pending is not None:
                    return self._finish(routes, index, pending, event)
                index += 1
        except HandlerError:
            raise
        except Exception as exc:
            raise HandlerError(routes[index], event, exc) from exc
        return None

    async def _finish(
        self, routes: list[Handler], index: int, pending: Awaitable[None], event: Any
    ) -> None:
        handler = routes[index]
        try:
            await pending
            for handler in routes[index + 1 :]:
                more = handler(event)
                if more is not None:
                    await more
        except HandlerError:
            raise
        except Exception as exc:
            raise HandlerError(handler, event, exc) from exc
