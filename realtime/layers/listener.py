"""The fan-out layer's state on one event loop: Redis connections, the listener task that reads
the process's subscriptions, and local delivery (direct handlers first, then inboxes)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgpack
import redis.asyncio as aioredis

from metrics import instruments
from realtime import redis_clients
from realtime.layers.inbox import Inbox
from realtime.layers.streams import OrderedStreams

if TYPE_CHECKING:
    from realtime.layers.layer import FanoutChannelLayer

logger = logging.getLogger(__name__)

IDLE_SWEEP_SECONDS = 30.0  # a quiet listener sweeps forgotten inboxes this often


class LoopState:
    """Everything bound to one event loop: Redis connections, the listener, local channels."""

    def __init__(self, layer: FanoutChannelLayer) -> None:
        self.layer = layer
        # Blocking pool: under load a publish waits for a connection instead of failing.
        self.client: aioredis.Redis = redis_clients.async_client(
            {"max_connections": 100, **layer.host}, pool_timeout=10
        )
        self.inboxes: dict[str, Inbox] = {}
        self.groups: dict[str, set[str]] = {}
        self.drops: dict[str, int] = {}  # channel -> messages dropped over capacity
        self.subscribed: dict[str, asyncio.Future[None]] = {}
        self.streams = OrderedStreams(
            layer.ordered_types,
            layer.reorder_wait,
            layer.reorder_limit,
            layer.recent_events,
            layer.recent_types,
        )
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        # Set when the Sentinels switch the primary: the listener's back-off ends at once.
        self.wake = asyncio.Event()
        redis_clients.on_switch(layer.host, self.wake.set)

    def start(self) -> None:
        if self.listener is None or self.listener.done():
            self.listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            try:
                self.pubsub = self.client.pubsub()
                channels = [self.layer.process_channel, *map(self.layer.group_key, self.groups)]
                await self.pubsub.subscribe(*channels)
                self.ready.set()
                if lost:  # whatever was published meanwhile is lost: say so
                    lost = False
                    for callback in self.layer.resubscribed:
                        try:
                            callback()
                        except Exception:
                            logger.exception("a resubscription callback failed")
                backoff = 0.1
                while True:
                    wait = self.streams.wait(IDLE_SWEEP_SECONDS)
                    item = await self.pubsub.get_message(timeout=wait)
                    if item is not None:
                        await self._handle(item)
                    elif wait >= IDLE_SWEEP_SECONDS:
                        self._sweep_idle()
                    if self.streams.holding:
                        await self._release_overdue()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Messages published while we are away are lost (at most once); seq repairs.
                self.ready.clear()
                lost = True
                try:  # held events wait for nothing now; streams restart after the outage
                    await self._release_overdue(everything=True)
                except Exception:
                    logger.exception("releasing held events failed")
                self.streams.clear()
                logger.exception("channel layer lost Redis; resubscribing in %.1f s", backoff)
                instruments.LAYER_RECONNECTS.inc()
                try:
                    await asyncio.wait_for(self.wake.wait(), backoff)
                except TimeoutError:
                    pass
                self.wake.clear()
                backoff = min(backoff * 2, 5.0)
                try:
                    await self.pubsub.aclose()
                except Exception:
                    pass

    async def _handle(self, item: dict[str, Any]) -> None:
        kind = item["type"]
        channel = item["channel"].decode()
        if kind == "subscribe":
            waiter = self.subscribed.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if kind != "message":
            return
        payload = msgpack.unpackb(item["data"], raw=False)
        if channel == self.layer.process_channel:
            self.deliver(payload["c"], payload["m"])
            return
        group = channel[len(self.layer.group_prefix) :]
        if group not in self.groups:
            return  # the last local member left while this was on its way
        streams = self.streams
        if payload["type"] in streams.types and isinstance(payload.get("seq"), int):
            for ready in streams.in_order(group, payload):
                await self._fan_out(group, ready)
        else:
            await self._fan_out(group, payload)

    async def _fan_out(self, group: str, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        inboxes = self.inboxes
        for member in list(self.groups.get(group, ())):
            inbox = inboxes.get(member)
            handlers = inbox.direct if inbox is not None else None
            handler = handlers.get(kind) if handlers is not None else None
            if handler is not None:
                try:
                    owner = inbox.owner  # type: ignore[union-attr]  # set with `direct`
                    outcome = handler(payload) if owner is None else handler(owner, payload)
                    if outcome is not False:
                        if outcome is not True:
                            await outcome
                        continue
                except Exception:
                    logger.exception("direct delivery failed; queueing instead")
            self.deliver(member, payload)
        published = payload.get("published_at")
        if published is not None:
            # Commit to the last local send (or queueing), once per event and process.
            histogram = self.layer.fanout_latency(group)
            if histogram is not None:
                histogram.observe(max(0.0, time.time() - published))

    async def _release_overdue(self, everything: bool = False) -> None:
        """Send what waited its full time (or, after losing Redis, everything held)."""
        for group, ready in self.streams.overdue(everything):
            for payload in ready:
                await self._fan_out(group, payload)

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        inbox = self.inboxes.get(channel)
        if inbox is None:
            return  # no receiver here any more: dropped, as in every layer
        if len(inbox) >= self.layer.get_capacity(channel):
            instruments.LAYER_DROPPED.inc()
            self.drops[channel] = self.drops.get(channel, 0) + 1
            return
        inbox.put(message)

    def _sweep_idle(self) -> None:
        """Forget inboxes nobody has read for `expiry` seconds, that nobody waits on or is
        notified from, and that are in no group."""
        cutoff = time.monotonic() - self.layer.expiry
        members = set().union(*self.groups.values()) if self.groups else set()
        for name, inbox in list(self.inboxes.items()):
            if (
                inbox.waiter is None
                and inbox.notify is None
                and inbox.touched < cutoff
                and name not in members
            ):
                del self.inboxes[name]
