"""The fan-out layer's extras behind one explicit interface, with plain Channels layers adapted.

`fanout()` returns what realtime and the publishers use beyond Channels' own layer API: our
FanoutChannelLayer (realtime.layers) implements `Fanout` itself; any other layer (the in-memory
layer, channels_redis) is wrapped in `PlainFanout`, whose extras do nothing, so that the same
code path serves both: without direct delivery every message goes through the consumer's queue.
"""

from __future__ import annotations

import abc
import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# A direct handler answers at once: False (queue the message as usual), True (nothing to send),
# or the write to await. It runs for each local member, so it is a plain call, not a coroutine.
Direct = bool | Awaitable[None]
DirectHandler = Callable[[dict[str, Any]], Direct]


class Fanout(abc.ABC):
    """What a socket and a publisher may ask of the channel layer beyond Channels' API."""

    # True: the layer times each event from publication to its last local send
    # (tripsage_fanout_latency_seconds), so consumers need not time each send themselves. Ours
    # does when its CONFIG names `fanout_latency_label`; a plain layer never does.
    observes_fanout: bool = False

    @abc.abstractmethod
    def attach(self, channel: str, handlers: dict[str, DirectHandler]) -> None:
        """Deliver these message types to `channel` by calling the handlers (direct delivery)."""

    @abc.abstractmethod
    def detach(self, channel: str) -> None:
        """Forget a finished consumer's channel: its handlers, its inbox, its drop count."""

    @abc.abstractmethod
    def expect(self, group: str, seq: int) -> None:
        """A member read `group`'s ordered stream up to `seq` (a snapshot, a history)."""

    def recent(self, group: str, after: int, upto: int) -> list[dict[str, Any]] | None:
        """`group`'s published events with `after < seq <= upto`, in order, if this process
        keeps every one of them in memory; None: read them from the log. A plain layer keeps
        none."""
        return None

    @abc.abstractmethod
    def dropped(self, channel: str) -> int:
        """Messages for `channel` dropped over capacity so far (per-connection metrics)."""

    @abc.abstractmethod
    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the event loop) each time the layer's subscriptions are restored
        after losing Redis: whatever was published meanwhile is lost (realtime.convergence)."""

    @abc.abstractmethod
    def publish_blocking(self, group: str, message: dict[str, Any]) -> None:
        """`group_send` from synchronous code (transaction.on_commit callbacks), waiting at most
        PUBLISH_TIMEOUT_SECONDS: raises when Redis is away or slower (events.broadcast logs and
        counts it)."""


class PlainFanout(Fanout):
    """A plain Channels layer: no direct delivery, no ordered streams, no drop counts."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def attach(self, channel: str, handlers: dict[str, DirectHandler]) -> None:
        pass  # every message reaches the consumer through its queue

    def detach(self, channel: str) -> None:
        pass

    def expect(self, group: str, seq: int) -> None:
        pass  # members put the stream in order themselves (gap fill)

    def dropped(self, channel: str) -> int:
        return 0

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        pass  # a plain layer does not say; the periodic check still covers what it lost

    def publish_blocking(self, group: str, message: dict[str, Any]) -> None:
        async_to_sync(self._publish)(group, message)

    async def _publish(self, group: str, message: dict[str, Any]) -> None:
        async with asyncio.timeout(settings.PUBLISH_TIMEOUT_SECONDS):
            await self.layer.group_send(group, message)


_adapters: weakref.WeakKeyDictionary[Any, PlainFanout] = weakref.WeakKeyDictionary()


def channel_layer() -> BaseChannelLayer:
    """The configured channel layer (Channels' `get_channel_layer()`, never None)."""
    layer = get_channel_layer()
    if layer is None:  # tripsage.settings always configure one; a settings module may not
        raise ImproperlyConfigured(
            "CHANNEL_LAYERS has no 'default' layer: configure one, as tripsage.settings.base does."
        )
    return layer


def fanout(layer: Any | None = None) -> Fanout:
    """The extras of `layer` (default: the configured channel layer)."""
    if layer is None:
        layer = channel_layer()
    if isinstance(layer, Fanout):
        return layer
    adapter = _adapters.get(layer)
    if adapter is None:
        adapter = _adapters[layer] = PlainFanout(layer)
    return adapter
