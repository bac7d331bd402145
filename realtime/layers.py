"""FanoutChannelLayer: a Redis channel layer built for fan-out to many sockets per process.

It is an ordinary Channels layer (configured in CHANNEL_LAYERS; `send`, `receive`, `new_channel`,
groups, `flush`), with three differences from channels_redis:

- One Redis pub/sub subscription per process and group. A group message crosses Redis once per
  process, is decoded once per process, and is then offered to each local member.
- Direct delivery. A consumer may `attach` handlers for hot message types; the layer calls them
  in its listener task instead of queueing the message and waking the consumer. A handler is a
  plain function that returns the write to await, True (nothing to send), or False (not ready,
  or out of order), which makes the layer queue the message as usual.
- Bounded inboxes. Each channel holds at most `capacity` queued messages; beyond that the new
  message is dropped and counted (tripsage_layer_dropped_total). Delivery is at most once, as with
  every Channels layer: the trip stream's `seq` and its log repair what is dropped.
- Ordered streams. Group messages of `ordered_types` carry a contiguous per-group `seq`. Two
  commits publish from two threads, so Redis may carry seq 6 before seq 5; the layer then holds
  6 (at most `reorder_wait` seconds) until 5 comes, once per process, instead of letting every
  member see a gap and read the missing event from the database. If 5 does not come in time, 6
  goes out and the members fill the gap from the log, as for any loss
  (tripsage_layer_held_total).

Publishing from synchronous code (transaction.on_commit callbacks) uses a blocking Redis client
(`publish_blocking`), so a commit costs one PUBLISH and no event loop hop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import msgpack
import redis
import redis.asyncio as aioredis
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from events.fanout import DirectHandler, Fanout
from events.groups import connection_type_of
from metrics import instruments

logger = logging.getLogger(__name__)


class _Inbox:
    """A bounded FIFO with one waiting receiver, lighter than asyncio.Queue: an idle socket's
    inbox is a small list (a deque allocates a 64-slot block up front)."""

    __slots__ = ("items", "touched", "waiter")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.touched = time.monotonic()

    def put(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> dict[str, Any]:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        self.touched = time.monotonic()
        return self.items.pop(0)  # inboxes stay short: the fast path bypasses them


IDLE_SWEEP_SECONDS = 30.0  # a quiet listener sweeps forgotten inboxes this often


class _Sequence:
    """Where one ordered group's stream stands in this process: the last `seq` offered to its
    members, and events that came early, by seq, until `deadline`."""

    __slots__ = ("deadline", "held", "last")

    def __init__(self, last: int) -> None:
        self.last = last
        self.held: dict[int, dict[str, Any]] = {}
        self.deadline = 0.0


class _LoopState:
    """Everything bound to one event loop: Redis connections, the listener, local channels."""

    def __init__(self, layer: FanoutChannelLayer) -> None:
        self.layer = layer
        # Blocking pool: under load a publish waits for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            layer.url, timeout=10, **{"max_connections": 100, **layer.client_options}
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self.inboxes: dict[str, _Inbox] = {}
        self.groups: dict[str, set[str]] = {}
        self.direct: dict[str, dict[str, DirectHandler]] = {}
        self.drops: dict[str, int] = {}  # channel -> messages dropped over capacity
        self.subscribed: dict[str, asyncio.Future[None]] = {}
        self.sequences: dict[str, _Sequence] = {}  # ordered groups' streams
        self.holding: set[str] = set()  # groups whose stream holds early events
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        if self.listener is None or self.listener.done():
            self.listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                self.pubsub = self.client.pubsub()
                channels = [self.layer.process_channel, *map(self.layer.group_key, self.groups)]
                await self.pubsub.subscribe(*channels)
                self.ready.set()
                backoff = 0.1
                while True:
                    wait = self._wait()
                    item = await self.pubsub.get_message(timeout=wait)
                    if item is not None:
                        await self._handle(item)
                    elif wait >= IDLE_SWEEP_SECONDS:
                        self._sweep_idle()
                    await self._release_overdue()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Messages published while we are away are lost (at most once); seq repairs.
                self.ready.clear()
                try:  # held events wait for nothing now; streams restart after the outage
                    await self._release_overdue(everything=True)
                except Exception:
                    logger.exception("releasing held events failed")
                self.sequences.clear()
                self.holding.clear()
                logger.exception("channel layer lost Redis; resubscribing in %.1f s", backoff)
                instruments.LAYER_RECONNECTS.inc()
                await asyncio.sleep(backoff)
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
        if payload["type"] in self.layer.ordered_types and isinstance(payload.get("seq"), int):
            for ready in self._in_order(group, payload):
                await self._fan_out(group, ready)
        else:
            await self._fan_out(group, payload)

    async def _fan_out(self, group: str, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        direct = self.direct
        for member in list(self.groups.get(group, ())):
            handlers = direct.get(member)
            handler = handlers.get(kind) if handlers is not None else None
            if handler is not None:
                try:
                    outcome = handler(payload)
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
            histogram = _fanout_histogram(group)
            if histogram is not None:
                histogram.observe(max(0.0, time.time() - published))

    # -- ordered streams ------------------------------------------------------------------------

    def _in_order(self, group: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of an ordered group that can go out now, in `seq` order."""
        seq = payload["seq"]
        stream = self.sequences.get(group)
        if stream is None:  # the first event this process sees: the stream starts here
            stream = self.sequences[group] = _Sequence(seq - 1)
        if seq <= stream.last:
            return [payload]  # late (released past already) or repeated: members drop or place it
        if seq > stream.last + 1:
            if not stream.held:
                stream.deadline = time.monotonic() + self.layer.reorder_wait
                self.holding.add(group)
            stream.held[seq] = payload
            if len(stream.held) <= self.layer.reorder_limit:
                return []
            return self._release(group, stream)  # too far ahead to be a reordering
        ready = [payload]
        stream.last = seq
        if stream.held:
            while stream.last + 1 in stream.held:
                stream.last += 1
                ready.append(stream.held.pop(stream.last))
            instruments.LAYER_HELD.labels("reordered").inc(len(ready) - 1)
            if not stream.held:
                self.holding.discard(group)
        return ready

    def _release(self, group: str, stream: _Sequence) -> list[dict[str, Any]]:
        """Give up waiting: the held events go out in order; members fill the gap from the log."""
        instruments.LAYER_HELD.labels("released").inc(len(stream.held))
        ready = [stream.held[seq] for seq in sorted(stream.held)]
        stream.held.clear()
        self.holding.discard(group)
        stream.last = ready[-1]["seq"]
        return ready

    def _wait(self) -> float:
        """How long the listener may wait for Redis: until the first hold runs out."""
        if not self.holding:
            return IDLE_SWEEP_SECONDS
        first = min(
            (self.sequences[group].deadline for group in self.holding if group in self.sequences),
            default=0.0,
        )
        return max(0.0, first - time.monotonic())

    async def _release_overdue(self, everything: bool = False) -> None:
        """Send what waited its full time (or, when the stream's position is lost with the
        Redis connection, everything held)."""
        if not self.holding:
            return
        now = time.monotonic()
        for group in list(self.holding):
            stream = self.sequences.get(group)
            if stream is None or not stream.held:  # the group went while we were sending
                self.holding.discard(group)
                continue
            if everything or stream.deadline <= now:
                for ready in self._release(group, stream):
                    await self._fan_out(group, ready)

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        inbox = self.inboxes.get(channel)
        if inbox is None:
            return  # no receiver here any more: dropped, as in every layer
        if len(inbox.items) >= self.layer.get_capacity(channel):
            instruments.LAYER_DROPPED.inc()
            self.drops[channel] = self.drops.get(channel, 0) + 1
            return
        inbox.put(message)

    def _sweep_idle(self) -> None:
        """Forget inboxes nobody has read for `expiry` seconds and that are in no group."""
        cutoff = time.monotonic() - self.layer.expiry
        members = set().union(*self.groups.values()) if self.groups else set()
        for name, inbox in list(self.inboxes.items()):
            if inbox.waiter is None and inbox.touched < cutoff and name not in members:
                del self.inboxes[name]


_fanout_children: dict[str, Any] = {}


def _fanout_histogram(group: str) -> Any:
    """tripsage_fanout_latency_seconds for the connection type a group belongs to (by its
    name: events.groups names them), or None for groups of no connection type."""
    kind = connection_type_of(group)
    if kind is None:
        return None
    child = _fanout_children.get(kind)
    if child is None:
        child = _fanout_children[kind] = instruments.FANOUT_LATENCY.labels(kind)
    return child


class FanoutChannelLayer(BaseChannelLayer, Fanout):
    extensions = ["groups", "flush"]
    observes_fanout = True  # consumers need not time each send (tripsage_fanout_latency_seconds)

    def __init__(
        self,
        hosts: list[Any] | None = None,
        prefix: str = "tripsage",
        expiry: int = 60,
        capacity: int = 1000,
        channel_capacity: dict[str, int] | None = None,
        ordered_types: tuple[str, ...] = ("trip.event", "chat.event"),
        reorder_wait: float = 0.1,
        reorder_limit: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        host = (hosts or ["redis://127.0.0.1:6379/0"])[0]
        if isinstance(host, dict):
            host = dict(host)
            self.url = host.pop("address")
            self.client_options = host
        else:
            self.url, self.client_options = host, {}
        self.client_options.setdefault("socket_timeout", None)
        self.prefix = prefix
        self.ordered_types = frozenset(ordered_types)
        self.reorder_wait = reorder_wait  # seconds an early event waits for the ones before it
        self.reorder_limit = reorder_limit  # events held per group at most
        self.process_id = uuid.uuid4().hex[:12]
        self.process_channel = f"{prefix}:p:{self.process_id}"
        self.group_prefix = f"{prefix}:g:"
        self.channel_capacity = self.compile_capacities(self.channel_capacity)
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._blocking: redis.Redis | None = None

    def group_key(self, group: str) -> str:
        return self.group_prefix + group

    async def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            for old in [other for other in self._states if other.is_closed()]:
                del self._states[old]
            state = self._states[loop] = _LoopState(self)
        state.start()
        await state.ready.wait()
        return state

    # -- channels -----------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        state = await self._state()
        name = f"{prefix}.{self.process_id}!{uuid.uuid4().hex}"
        state.inboxes[name] = _Inbox()
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert self.require_valid_channel_name(channel)
        state = await self._state()
        owner = channel.split("!", 1)[0].rsplit(".", 1)[-1]
        if owner == self.process_id:
            inbox = state.inboxes.get(channel)
            if inbox is not None and len(inbox.items) >= self.get_capacity(channel):
                raise ChannelFull(channel)
            state.deliver(channel, message)
            return
        packed = msgpack.packb({"c": channel, "m": message}, use_bin_type=True)
        await state.client.publish(f"{self.prefix}:p:{owner}", packed)

    async def receive(self, channel: str) -> dict[str, Any]:
        assert self.require_valid_channel_name(channel)
        state = await self._state()
        inbox = state.inboxes.get(channel)
        if inbox is None:
            inbox = state.inboxes[channel] = _Inbox()
        return await inbox.get()

    # -- groups -------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        assert self.require_valid_group_name(group)
        state = await self._state()
        members = state.groups.get(group)
        if members is None:
            members = state.groups[group] = set()
            state.sequences.pop(group, None)  # a stream left from before starts afresh
            state.holding.discard(group)
            key = self.group_key(group)
            waiter = state.subscribed[key] = asyncio.get_running_loop().create_future()
            await state.pubsub.subscribe(key)
            # Once Redis confirms, every later publish reaches us: a snapshot read after
            # group_add returns cannot miss an event.
            await asyncio.wait_for(waiter, 10)
        members.add(channel)

    async def group_discard(self, group: str, channel: str) -> None:
        state = await self._state()
        members = state.groups.get(group)
        if members is None:
            return
        members.discard(channel)
        if not members:
            del state.groups[group]
            state.sequences.pop(group, None)
            state.holding.discard(group)
            state.subscribed.pop(self.group_key(group), None)
            await state.pubsub.unsubscribe(self.group_key(group))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert self.require_valid_group_name(group)
        state = await self._state()
        await state.client.publish(self.group_key(group), msgpack.packb(message, use_bin_type=True))

    def publish_blocking(self, group: str, message: dict[str, Any]) -> None:
        """The same, from synchronous code (on_commit callbacks), without an event loop."""
        assert self.require_valid_group_name(group)
        if self._blocking is None:
            self._blocking = redis.Redis.from_url(self.url, socket_connect_timeout=5)
        self._blocking.publish(self.group_key(group), msgpack.packb(message, use_bin_type=True))

    # -- ordered streams ----------------------------------------------------------------------

    def expect(self, group: str, seq: int) -> None:
        """A member read `group`'s state up to `seq` (a snapshot, a history): if this process
        has not seen the group's stream yet, it starts there, so that an early seq + 2 waits
        for seq + 1 instead of starting the stream past it."""
        for state in self._states.values():
            if group in state.groups and group not in state.sequences:
                state.sequences[group] = _Sequence(seq)

    # -- direct delivery ----------------------------------------------------------------------

    def attach(self, channel: str, handlers: dict[str, DirectHandler]) -> None:
        """Deliver these message types by calling the handlers in the listener task."""
        for state in self._states.values():
            if channel in state.inboxes:
                state.direct[channel] = handlers

    def detach(self, channel: str) -> None:
        """Forget a finished consumer's channel: its handlers, its inbox, its drop count."""
        for state in self._states.values():
            state.direct.pop(channel, None)
            state.inboxes.pop(channel, None)
            state.drops.pop(channel, None)

    def dropped(self, channel: str) -> int:
        """Messages for `channel` dropped over capacity so far (per-connection metrics)."""
        return sum(state.drops.get(channel, 0) for state in self._states.values())

    async def flush(self) -> None:
        state = await self._state()
        state.inboxes.clear()
        state.direct.clear()
        state.sequences.clear()
        state.holding.clear()
        for group in list(state.groups):
            await state.pubsub.unsubscribe(self.group_key(group))
        state.groups.clear()
