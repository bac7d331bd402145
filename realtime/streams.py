"""Ordered streams on a socket: a trip's events and a trip's chat messages, in `seq` order, once.

Every event of a stream carries the stream's `seq` (events.broadcast), and reaches a socket one of
two ways. The fast path (`write_next`): the fan-out layer (realtime.layers) writes it straight to
the socket from its listener, when it is the very next `seq` and the fast path is not paused. The
queued path (`send_queued`): anything else waits in the consumer's queue, where a duplicate is
dropped and a gap (the layer delivers at most once) is filled from the log before the event is
sent.

While the socket's own request, a replay or a gap fill runs, the fast path is paused
(`fast_path_paused`): newer events wait in the queue behind it, so the client gets its `ack` (or
the whole replay) before the events that follow it, and never an event twice or out of order.

The connection type (realtime.consumers.trips, realtime.consumers.chat) says only what differs:
how to read the events a socket missed, and what it does with them once sent. (The fan-out layer
first puts a group's events in order once per process, realtime.layers.streams; this is each
socket's side, which also covers plain Channels layers and events the layer dropped.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from events.fanout import Direct
from metrics import instruments
from protocol import ConnectionType


class StreamSocket(Protocol):
    """What a stream needs of its socket (realtime.consumers.base.RealtimeConsumer)."""

    @property
    def connection_type(self) -> ConnectionType: ...

    @property
    def closing(self) -> bool: ...

    def write_published(self, event: dict[str, Any]) -> Direct: ...

    async def send_published(self, event: dict[str, Any]) -> None: ...

    async def send_event(self, message: dict[str, Any]) -> None: ...


# The connection type's gap fill: read what the socket missed up to this `seq` from the log and
# send it through `OrderedStream.send_missed`. False: the socket may not read it (it was closed),
# and the event that revealed the gap is dropped.
FillGap = Callable[[int], Awaitable[bool]]


class OrderedStream:
    """Where one socket's stream stands (`last_seq`, the last `seq` sent), and the two paths an
    event takes to it."""

    __slots__ = ("_fill_gap", "_paused", "last_seq", "socket")

    def __init__(self, socket: StreamSocket, last_seq: int, fill_gap: FillGap) -> None:
        self.socket = socket
        self.last_seq = last_seq  # the snapshot's or history's `seq` when the stream starts
        self._fill_gap = fill_gap
        self._paused = 0  # > 0: events wait in the queue (nested pauses count)

    @property
    def paused(self) -> bool:
        return self._paused > 0

    @contextlib.asynccontextmanager
    async def fast_path_paused(self) -> AsyncIterator[None]:
        """While this runs (the socket's own request, a replay, a gap read from the database),
        the layer must not write this socket's events straight to it: they wait in the queue."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def write_next(self, event: dict[str, Any]) -> Direct:
        """The fast path, for the fan-out layer: only the very next `seq`, and only while the
        fast path is not paused. Anything else goes to the queue (False), where `send_queued`
        puts it in order; an event already sent is taken and dropped (True)."""
        if self._paused or self.socket.closing:
            return False
        seq = event["seq"]
        if seq <= self.last_seq:
            return True  # already sent
        if seq != self.last_seq + 1:
            return False
        self.last_seq = seq
        return self.socket.write_published(event)

    async def send_queued(self, event: dict[str, Any]) -> bool:
        """The queued path: drop a duplicate, fill a gap from the log, then send `event`.
        True when `event` itself was sent (the caller may act on it)."""
        async with self.fast_path_paused():
            seq = event["seq"]
            if seq <= self.last_seq:
                return False
            if seq > self.last_seq + 1:
                if not await self._fill_gap(seq - 1) or seq <= self.last_seq:
                    return False
            await self.socket.send_published(event)
            self.last_seq = seq
            return True

    async def catch_up(self, up_to: int) -> None:
        """Fill from the log up to `up_to` if the socket is still behind it (realtime.convergence:
        the events were lost on their way, and no next event came to reveal the gap)."""
        async with self.fast_path_paused():
            if up_to > self.last_seq and not self.socket.closing:
                await self._fill_gap(up_to)

    async def send_missed(
        self,
        missed: Iterable[dict[str, Any]],
        up_to: int,
        then: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """Send the events read from the log (in `seq` order) that this socket has not sent, up
        to `up_to`; `then` acts on each once it is sent."""
        for message in missed:
            seq = message["seq"]
            if seq > up_to:
                break
            if seq <= self.last_seq:
                continue  # sent meanwhile: never twice
            instruments.REPLAYS.labels(self.socket.connection_type, "gap_fill").inc()
            await self.socket.send_event(message)
            self.last_seq = seq
            if then is not None:
                await then(message)
