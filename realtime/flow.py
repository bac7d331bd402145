"""What a socket writes, counted: flow control, heartbeat pings and pongs, and the closing frame.

Every frame to the client leaves through `send_text` (awaited) or `write_published` (the fan-out
layer's synchronous write), so that what the client has not acknowledged can be counted: a client
that stops reading is cut off (4009) before it costs unbounded memory. Acknowledgement is the pong
to a ping; a ping goes out after every REALTIME_FLOW_PING_BYTES of traffic as well as on the
heartbeat, and a socket heard from for none of REALTIME_HEARTBEAT_TIMEOUT_SECONDS is closed (4008).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, ClassVar, Literal

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from prometheus_client import Histogram

import protocol
from events.fanout import fanout
from metrics import instruments
from metrics.collector import collector
from protocol import CloseCode, ConnectionType, ErrorCode, ProtocolError
from realtime.consumer_loop import SingleTaskConsumer
from realtime.direct import Writer, event_frame, text_frame, writer_for


def _send_on_closed_errors() -> tuple[type[BaseException], ...]:
    """What an ASGI send raises on a connection the client has closed already: ASGI asks for
    an OSError; daphne raises autobahn's Disconnected until it has seen the close itself."""
    try:
        from autobahn.exception import Disconnected
    except ImportError:  # another ASGI server
        return (OSError,)
    return (Disconnected, OSError)


SEND_ON_CLOSED = _send_on_closed_errors()


def utf8_size(text: str) -> int:
    """The bytes a text frame carries (UTF-8), which a client counts too. `isascii` answers
    from the string's header, so the common frame costs no encoding."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class SocketState:
    """Per-socket counters in one slotted object: thousands of idle sockets each carry one,
    so they stay out of the consumer's attribute dict. Flow control, heartbeat and rate-limit
    state, and the seed's ConnectionMetrics (metrics.collector writes them in batches)."""

    __slots__ = (
        "bytes_acked",
        "bytes_at_last_ping",
        "bytes_in",
        "bytes_out",
        "connected_at",
        "errors",
        "flushed",
        "last_activity",
        "last_heard",
        "latency_count",
        "latency_ms",
        "latency_peak",
        "latency_sum",
        "low_notified",
        "messages_in",
        "messages_out",
        "next_ping",
        "pings",
        "reconnects",
        "refresh_refusals",
        "refusals",
    )

    def __init__(self, now: float) -> None:
        self.last_heard = now
        self.next_ping = now + settings.REALTIME_HEARTBEAT_SECONDS
        self.latency_ms: float | None = None
        self.bytes_out = 0
        self.bytes_acked = 0
        self.bytes_at_last_ping = 0
        self.pings: dict[str, tuple[float, int]] | None = None  # id -> (sent at, bytes_out)
        self.low_notified = False  # a rate_limit_status went out as the budget fell under 20 %
        # (refused by the rate limit, since): messages, and auth.refresh (realtime.admission)
        self.refusals = self.refresh_refusals = (0, now)
        self.connected_at = self.last_activity = time.time()  # wall clock, for the metrics
        self.messages_in = self.messages_out = self.bytes_in = self.errors = 0
        self.latency_sum = self.latency_peak = 0.0
        self.latency_count = self.reconnects = 0
        self.flushed = 0.0  # when the collector last wrote this socket's row (monotonic)


class HandshakeTally:
    """The frames of one handshake (the token, and any refused before it), counted as
    SocketState counts a socket's: the consumer's metrics start from them. Filled by
    realtime.auth.JWTAuthMiddleware, in the scope as `handshake`, which the consumer drops once
    it has read it (nothing per socket kept)."""

    __slots__ = ("bytes_in", "bytes_out", "errors", "frames_in", "frames_out")

    def __init__(self) -> None:
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = self.errors = 0

    def received(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        self.frames_in += 1
        self.bytes_in += utf8_size(text) if text is not None else len(message.get("bytes") or b"")

    def error_sent(self, frame: dict[str, Any]) -> None:
        self.frames_out += 1
        self.bytes_out += utf8_size(frame["text"])
        self.errors += 1


class FlowControlledConsumer(SingleTaskConsumer, AsyncWebsocketConsumer):
    """The writing half of realtime.consumers.base.RealtimeConsumer (on one task per socket,
    realtime.consumer_loop)."""

    connection_type: ClassVar[ConnectionType]
    # No list per socket: Channels' websocket_connect joins these, and ours does not call it
    # (realtime.consumers.base joins its groups itself).
    groups = ()  # type: ignore[assignment]
    io: SocketState
    closing: bool  # set first by `close_with`: no frame goes out after the closing one
    closed_as: CloseCode | None  # the close code this side chose, for the metrics
    _direct_write: Writer | None  # None: every frame through the ASGI send
    _fanout_latency: ClassVar[Histogram]  # FANOUT_LATENCY for this connection type

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = getattr(cls, "connection_type", None)
        if kind is not None:  # bound once per class, not looked up per frame
            cls._fanout_latency = instruments.FANOUT_LATENCY.labels(kind)

    def start_flow(self) -> None:
        """Before the first frame: the socket's counters and, under daphne, its direct writer."""
        self.io = SocketState(time.monotonic())
        self._direct_write = writer_for(self.base_send)
        self.closing = False
        self.closed_as = None

    @property
    def latency_ms(self) -> float | None:
        return self.io.latency_ms

    # -- frames out -----------------------------------------------------------------------------
    # The ignores on `base_send`: asgiref types `websocket.send` with both `bytes` and `text`
    # required, where the ASGI spec lets either be left out (django/asgiref#460).

    async def _send_frame(self, text: str) -> None:
        """The ASGI send of one frame. A client that has closed already gets nothing more, and
        that is no fault: its websocket.disconnect follows and releases the socket."""
        try:
            await self.base_send({"type": "websocket.send", "text": text})  # type: ignore[arg-type]
        except SEND_ON_CLOSED:
            self.closing = True

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        try:
            await super().close(code=code, reason=reason)
        except SEND_ON_CLOSED:
            pass  # closed by the client first

    async def send_event(self, message: dict[str, Any]) -> None:
        await self.send_text(protocol.encode(message))

    async def send_text(self, text: str) -> None:
        if self.closing:
            return
        if self._count_out(text):
            await self._send_then_control(text)
        elif not self._write_direct(text):
            await self._send_frame(text)

    def write_published(self, event: dict[str, Any]) -> Literal[True] | Awaitable[None]:
        """A fanned-out event's pre-encoded text, written by the fan-out layer without waking
        the consumer: True when it went straight to the socket (framed once per process by
        realtime.direct), else the send to await."""
        text = event["text"]
        size = event.get("size")
        if size is None:  # once per process: the event dict is shared by its local members
            size = event["size"] = utf8_size(text)
        if self._count_out(text, size):
            return self._send_then_control(text)
        if self._write_direct(text, event_frame(event) if self._direct_write is not None else None):
            return True
        return self._send_frame(text)

    def _count_out(self, text: str, size: int | None = None) -> bool:
        """Count one frame out (`size`: its UTF-8 bytes, if known); True when flow control must
        follow it with a ping (or, past REALTIME_MAX_UNACKED_BYTES, with the 4009 close)."""
        io = self.io
        io.bytes_out += utf8_size(text) if size is None else size
        io.messages_out += 1
        return (
            io.bytes_out - io.bytes_acked > settings.REALTIME_MAX_UNACKED_BYTES
            or io.bytes_out - io.bytes_at_last_ping > settings.REALTIME_FLOW_PING_BYTES
        )

    def _write_direct(self, text: str, framed: bytes | None = None) -> bool:
        """True when the frame went straight to the socket (realtime.direct); False: the ASGI
        send must carry it."""
        write = self._direct_write
        return write is not None and write(framed if framed is not None else text_frame(text))

    async def _send_then_control(self, text: str) -> None:
        io = self.io
        await self._send_frame(text)
        unacked = io.bytes_out - io.bytes_acked
        if unacked > settings.REALTIME_MAX_UNACKED_BYTES:
            instruments.SLOW_CONSUMER_CLOSES.labels(self.connection_type).inc()
            await self.close_with(
                protocol.error_message(
                    ErrorCode.NETWORK_ERROR,
                    "The client is not reading: too much unacknowledged data.",
                    details={"reason": "slow_consumer", "unacknowledged_bytes": unacked},
                ),
                CloseCode.SLOW_CONSUMER,
            )
        elif not self.closing:
            await self.send_ping()

    async def send_published(self, event: dict[str, Any]) -> None:
        """A fanned-out event (events.broadcast) through the consumer's queue: its pre-encoded
        text, and the time from its publication after commit to this send
        (tripsage_fanout_latency_seconds; the fan-out layer measures it once per event and
        process instead, after its last local send)."""
        published = event.get("published_at")
        if published is not None and not fanout(self.channel_layer).observes_fanout:
            self._fanout_latency.observe(max(0.0, time.time() - published))
        await self.send_text(event["text"])

    async def send_error(self, error: ProtocolError) -> None:
        self.io.errors += 1
        instruments.ERRORS.labels(self.connection_type, error.code).inc()
        await self.send_event(error.envelope())

    async def close_with(self, envelope: dict[str, Any], code: CloseCode) -> None:
        """Tell the client why, then close: a client never has to guess from a bare code."""
        if self.closing:
            return
        self.closing = True  # first: no send below may start another close
        self.closed_as = code
        text = protocol.encode(envelope)
        self._count_out(text)  # the socket's last frame counts like any other (no ping follows)
        await self._send_frame(text)
        await self.close(code=int(code))

    # -- heartbeat ------------------------------------------------------------------------------

    async def send_ping(self) -> None:
        io = self.io
        ping = protocol.server_message("ping")
        io.bytes_at_last_ping = io.bytes_out
        if io.pings is None:
            io.pings = {}
        io.pings[ping["id"]] = (time.monotonic(), io.bytes_out)
        if len(io.pings) > 32:  # unanswered pings: keep the newest
            io.pings.pop(next(iter(io.pings)))
        await self.send_text(protocol.encode(ping))

    async def on_ping(self, message: protocol.Ping) -> None:
        await self.send_event(protocol.server_message("pong", request_id=message.id))

    async def on_pong(self, message: protocol.Pong) -> None:
        """The answer to one of our pings: the round trip, and what the client has read."""
        io = self.io
        sent = io.pings.pop(message.request_id, None) if io.pings and message.request_id else None
        if sent is None:
            return
        rtt = time.monotonic() - sent[0]
        io.latency_ms = rtt * 1000
        io.latency_sum += io.latency_ms
        io.latency_count += 1
        io.latency_peak = max(io.latency_peak, io.latency_ms)
        collector().heartbeat(io.latency_ms)
        io.bytes_acked = max(io.bytes_acked, sent[1])
        instruments.HEARTBEAT_LATENCY.labels(self.connection_type).observe(rtt)

    def heartbeat_due(self) -> float:
        """When `heartbeat` next has something to do: the next ping or the silence deadline."""
        io = self.io
        return min(io.next_ping, io.last_heard + settings.REALTIME_HEARTBEAT_TIMEOUT_SECONDS)

    async def heartbeat(self, now: float) -> None:
        """Each tick (realtime.timers): close a socket gone silent, ping when one is due."""
        io = self.io
        if now - io.last_heard >= settings.REALTIME_HEARTBEAT_TIMEOUT_SECONDS:
            await self.close_with(
                protocol.error_message(
                    ErrorCode.NETWORK_ERROR,
                    f"Nothing heard from the client for {now - io.last_heard:.0f} s.",
                    details={"reason": "heartbeat_timeout"},
                ),
                CloseCode.HEARTBEAT_TIMEOUT,
            )
        elif now >= io.next_ping:
            io.next_ping = now + settings.REALTIME_HEARTBEAT_SECONDS
            await self.send_ping()
