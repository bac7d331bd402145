"""FanoutChannelLayer: a Redis channel layer built for fan-out to many sockets per process.

It is an ordinary Channels layer (configured in CHANNEL_LAYERS; `send`, `receive`, `new_channel`,
groups, `flush`), with these differences from channels_redis, offered through events.fanout's
`Fanout` interface:

- One Redis pub/sub subscription per process and group. A group message crosses Redis once per
  process, is decoded once per process, and is then offered to each local member.
- Direct delivery. A consumer may `attach` handlers for hot message types; the layer calls them
  in its listener task instead of queueing the message and waking the consumer. A handler is a
  plain function that returns the write to await, True (nothing to send), or False (not ready,
  or out of order), which makes the layer queue the message as usual.
- Notified inboxes. A consumer may ask to be called back as messages reach its channel
  (`on_message`) and take them with `receive_nowait`, instead of keeping a task waiting in
  `receive` for its whole life (realtime.consumer_loop).
- Bounded inboxes (realtime.layers.inbox). Each channel holds at most `capacity` queued messages;
  beyond that the new message is dropped and counted (tripsage_layer_dropped_total). Delivery is
  at most once, as with every Channels layer: an ordered stream's `seq` and its log repair it.
- Ordered streams (realtime.layers.streams) for the message types the caller names in
  `ordered_types`: an early `seq` waits, once per process, for the ones before it.
- Fan-out latency (tripsage_fanout_latency_seconds), measured once per event and process, when
  the caller names `fanout_latency_label`: a dotted path to a function from a group name to the
  histogram's label (None: not measured for that group).

The layer knows nothing of the application: which types are ordered and how groups are labelled
come from CHANNEL_LAYERS (tripsage/settings/base.py). Publishing from synchronous code
(transaction.on_commit callbacks) uses a blocking Redis client (`publish_blocking`), so a commit
costs one PUBLISH and no event loop hop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from re import Pattern
from types import MethodType
from typing import Any

import msgpack
import redis
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from django.utils.module_loading import import_string
from redis.backoff import NoBackoff
from redis.retry import Retry

from events.fanout import DirectHandler, Fanout
from metrics import instruments
from realtime import redis_clients
from realtime.layers.inbox import Inbox
from realtime.layers.listener import LoopState

logger = logging.getLogger(__name__)

# Longest wait for the process's subscriptions before an operation that needs Redis (joining a
# group, publishing) gives up with TimeoutError.
READY_TIMEOUT = 5.0


class FanoutChannelLayer(BaseChannelLayer, Fanout):
    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: list[Any] | None = None,
        prefix: str = "tripsage",
        expiry: int = 60,
        capacity: int = 1000,
        channel_capacity: dict[Pattern[str] | str, int] | None = None,
        ordered_types: Iterable[str] = (),
        reorder_wait: float = 0.1,
        reorder_limit: int = 100,
        recent_events: int = 0,
        recent_types: Iterable[str] | None = None,
        fanout_latency_label: str | None = None,
        publish_timeout: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        host = (hosts or ["redis://127.0.0.1:6379/0"])[0]
        # A host entry (realtime.redis_clients): a URL, or a Sentinel-managed primary.
        self.host: dict[str, Any] = dict(host) if isinstance(host, dict) else {"address": host}
        self.host.setdefault("socket_timeout", None)
        self.prefix = prefix
        self.publish_timeout = publish_timeout  # seconds a publish waits for Redis at most
        self.ordered_types = frozenset(ordered_types)
        self.reorder_wait = reorder_wait  # seconds an early event waits for the ones before it
        self.reorder_limit = reorder_limit  # events held per group at most
        self.recent_events = recent_events  # events kept per ordered group for resumes ...
        self.recent_types = recent_types  # ... of these types (None: every ordered type)
        # Imported here, once: a wrong path fails at start-up, not on the first event.
        self._latency_label: Callable[[str], str | None] | None = (
            import_string(fanout_latency_label) if fanout_latency_label else None
        )
        self._latency_children: dict[str, Any] = {}
        # The layer times each event itself, so consumers need not time each send; without a
        # label function it does not, and they do.
        self.observes_fanout = self._latency_label is not None
        self.process_id = uuid.uuid4().hex[:12]
        self.process_channel = f"{prefix}:p:{self.process_id}"
        self.group_prefix = f"{prefix}:g:"
        # Compiled, as channels_redis does and as Channels' get_capacity reads it; types-channels
        # types the attribute as the uncompiled dict only.
        self.channel_capacity = self.compile_capacities(self.channel_capacity)  # type: ignore[assignment]
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._blocking: redis.Redis | None = None
        self.resubscribed: list[Callable[[], None]] = []  # on_resubscribed's callbacks

    def group_key(self, group: str) -> str:
        return self.group_prefix + group

    def fanout_latency(self, group: str) -> Any:
        """tripsage_fanout_latency_seconds for the label `fanout_latency_label` gives `group`,
        or None (no label function, or a group it does not label)."""
        label_of = self._latency_label
        if label_of is None:
            return None
        label = label_of(group)
        if label is None:
            return None
        child = self._latency_children.get(label)
        if child is None:
            child = self._latency_children[label] = instruments.FANOUT_LATENCY.labels(label)
        return child

    def _local(self) -> LoopState:
        """This loop's state, its listener started: for what needs no Redis (channels,
        inboxes, leaving a group), which must work while Redis is away."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            for old in [other for other in self._states if other.is_closed()]:
                del self._states[old]
            state = self._states[loop] = LoopState(self)
        state.start()
        return state

    async def _state(self) -> LoopState:
        """This loop's state once its subscriptions are in place: at most READY_TIMEOUT, then
        TimeoutError (Redis away: a socket opening now is told to retry, never left waiting)."""
        state = self._local()
        if not state.ready.is_set():
            await asyncio.wait_for(state.ready.wait(), READY_TIMEOUT)
        return state

    # -- channels -----------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        state = self._local()
        name = f"{prefix}.{self.process_id}!{uuid.uuid4().hex}"
        state.inboxes[name] = Inbox()
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert self.require_valid_channel_name(channel)
        owner = channel.split("!", 1)[0].rsplit(".", 1)[-1]
        if owner == self.process_id:
            # A channel of this process: no Redis involved, so it works while Redis is away
            # (the listener's state exists once the channel does).
            state = self._local()
            inbox = state.inboxes.get(channel)
            if inbox is not None and len(inbox) >= self.get_capacity(channel):
                raise ChannelFull(channel)
            state.deliver(channel, message)
            return
        state = await self._state()
        packed = msgpack.packb({"c": channel, "m": message}, use_bin_type=True)
        await state.client.publish(f"{self.prefix}:p:{owner}", packed)

    async def receive(self, channel: str) -> dict[str, Any]:
        assert self.require_valid_channel_name(channel)
        return await self._inbox(channel).get()

    def on_message(self, channel: str, callback: Callable[[], None]) -> None:
        """Call `callback` each time a message reaches this local channel, instead of a receiver
        waiting in `receive` (realtime.consumer_loop: an idle socket then holds no task for
        its channel); the callee takes the messages with `receive_nowait`."""
        inbox = self._inbox(channel)
        inbox.notify = callback
        if len(inbox):
            callback()

    def receive_nowait(self, channel: str) -> dict[str, Any] | None:
        """The oldest message waiting for this local channel, or None."""
        inbox = self._local().inboxes.get(channel)
        return inbox.take() if inbox is not None else None

    def _inbox(self, channel: str) -> Inbox:
        state = self._local()
        inbox = state.inboxes.get(channel)
        if inbox is None:
            inbox = state.inboxes[channel] = Inbox()
        return inbox

    # -- groups -------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        assert self.require_valid_group_name(group)
        state = await self._state()
        members = state.groups.get(group)
        if members is None:
            members = state.groups[group] = set()
            state.streams.forget(group)  # a stream left from before starts afresh
            key = self.group_key(group)
            waiter = state.subscribed[key] = asyncio.get_running_loop().create_future()
            try:
                await state.pubsub.subscribe(key)
                # Once Redis confirms, every later publish reaches us: a snapshot read after
                # group_add returns cannot miss an event.
                await asyncio.wait_for(waiter, 10)
            except BaseException:
                if not members and state.groups.get(group) is members:
                    del state.groups[group]  # never joined: nothing to resubscribe to
                state.subscribed.pop(key, None)
                raise
        members.add(channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Leave the group; works while Redis is away (the listener resubscribes only to the
        groups that still have local members)."""
        state = self._local()
        members = state.groups.get(group)
        if members is None:
            return
        members.discard(channel)
        if not members:
            del state.groups[group]
            state.streams.forget(group)
            state.subscribed.pop(self.group_key(group), None)
            if state.ready.is_set():
                try:
                    async with asyncio.timeout(self.publish_timeout):
                        await state.pubsub.unsubscribe(self.group_key(group))
                except Exception:  # messages for it are ignored; resubscribing forgets it
                    logger.warning("unsubscribing from %s failed", group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Publish to the group; raises TimeoutError when Redis takes longer than
        `publish_timeout` (a frozen Redis never holds the caller)."""
        assert self.require_valid_group_name(group)
        state = self._local()
        packed = msgpack.packb(message, use_bin_type=True)
        async with asyncio.timeout(self.publish_timeout):  # Redis away: no wait beyond this
            await state.ready.wait()
        async with asyncio.timeout(self.publish_timeout):
            await state.client.publish(self.group_key(group), packed)

    def publish_blocking(self, group: str, message: dict[str, Any]) -> None:
        """The same, from synchronous code (on_commit callbacks), without an event loop: at
        most `publish_timeout` for the connect and as much for the reply, and one retry on a
        fresh connection when the pooled one turns out dead (Redis restarted), none on a
        timeout."""
        assert self.require_valid_group_name(group)
        if self._blocking is None:
            self._blocking = redis_clients.sync_client(
                {key: value for key, value in self.host.items() if key != "max_connections"},
                socket_connect_timeout=self.publish_timeout,
                socket_timeout=self.publish_timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        self._blocking.publish(self.group_key(group), msgpack.packb(message, use_bin_type=True))

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the listener is subscribed again after losing Redis."""
        if callback not in self.resubscribed:
            self.resubscribed.append(callback)

    # -- ordered streams ----------------------------------------------------------------------

    def expect(self, group: str, seq: int) -> None:
        """A member read `group`'s state up to `seq` (a snapshot, a history): if this process
        has not seen the group's stream yet, it starts there, so that an early seq + 2 waits
        for seq + 1 instead of starting the stream past it."""
        for state in self._states.values():
            if group in state.groups:
                state.streams.expect(group, seq)

    def recent(self, group: str, after: int, upto: int) -> list[dict[str, Any]] | None:
        """`group`'s events with `after < seq <= upto`, as this process sent them out, if it
        still keeps every one (`recent_events` per group); else None."""
        state = self._states.get(asyncio.get_running_loop())
        if state is None or group not in state.groups:
            return None
        return state.streams.recent_events(group, after, upto)

    # -- direct delivery ----------------------------------------------------------------------

    def attach(self, channel: str, handlers: dict[str, DirectHandler]) -> None:
        """Deliver these message types by calling the handlers in the listener task."""
        owner, table = _shared(handlers)
        for state in self._states.values():
            inbox = state.inboxes.get(channel)
            if inbox is not None:
                inbox.owner, inbox.direct = owner, table

    def detach(self, channel: str) -> None:
        """Forget a finished consumer's channel: its handlers, its inbox, its drop count."""
        for state in self._states.values():
            state.inboxes.pop(channel, None)
            state.drops.pop(channel, None)

    def dropped(self, channel: str) -> int:
        """Messages for `channel` dropped over capacity so far (per-connection metrics)."""
        return sum(state.drops.get(channel, 0) for state in self._states.values())

    async def flush(self) -> None:
        state = self._local()
        state.inboxes.clear()
        state.streams.clear()
        for group in list(state.groups):
            await state.pubsub.unsubscribe(self.group_key(group))
        state.groups.clear()


# (class, its handlers' types and functions) -> that table, shared by every socket of the class.
_tables: dict[tuple[type, tuple[tuple[str, Any], ...]], dict[str, Any]] = {}


def _shared(handlers: dict[str, DirectHandler]) -> tuple[Any, dict[str, Any]]:
    """Handlers that are methods of one object, as that object and its class's table of
    functions: an idle socket then holds no handler dict and no bound methods of its own
    (bench S3). Any other handlers as they are, with no owner."""
    methods = {kind: h for kind, h in handlers.items() if isinstance(h, MethodType)}
    if not methods or len(methods) != len(handlers):
        return None, dict(handlers)
    owner = next(iter(methods.values())).__self__
    if any(method.__self__ is not owner for method in methods.values()):
        return None, dict(handlers)
    functions = tuple(sorted((kind, method.__func__) for kind, method in methods.items()))
    key = (type(owner), functions)
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = dict(functions)
    return owner, table
