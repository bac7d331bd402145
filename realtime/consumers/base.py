"""The base consumer: protocol parsing, error envelopes, heartbeat, token expiry and refresh.

A connection type subclasses it, names its `connection_type` and `client_messages`, and writes one
`on_<type>` handler per message type (`trip.update` -> `on_trip_update`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

import protocol
from collaboration.errors import CollaborationError, InvalidChange
from events.aio import db
from events.fanout import Direct, fanout
from metrics import instruments
from metrics.collector import collector
from protocol import (
    AuthFailureReason,
    ClientMessage,
    CloseCode,
    ConnectionType,
    ErrorCode,
    ProtocolError,
)
from realtime.auth import AuthContext, AuthFailure, authenticate_token
from realtime.connections import connections
from realtime.direct import event_frame, text_frame, writer_for
from realtime.throttling import Decision, message_rate, throttle
from realtime.timers import ticker

logger = logging.getLogger(__name__)


def domain_error(error: CollaborationError, request_id: str | None) -> ProtocolError:
    """A service's refusal as the seed's envelope: the same codes REST uses."""
    if isinstance(error, InvalidChange):
        return ProtocolError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            error.message,
            details={"reason": "invalid_value", **error.details},
            request_id=request_id,
        )
    return ProtocolError(
        ErrorCode.AUTHORIZATION_FAILED, error.message, details=error.details, request_id=request_id
    )


class _SocketState:
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
        "refusals",
        "refusals_since",
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
        self.refusals = 0  # messages refused by the rate limit since refusals_since
        self.refusals_since = now
        self.connected_at = self.last_activity = time.time()  # wall clock, for the metrics
        self.messages_in = self.messages_out = self.bytes_in = self.errors = 0
        self.latency_sum = self.latency_peak = 0.0
        self.latency_count = self.reconnects = 0
        self.flushed = 0.0  # when the collector last wrote this socket's row (monotonic)


class RealtimeConsumer(AsyncWebsocketConsumer):
    connection_type: ClassVar[ConnectionType]
    last_seq: int  # the last `seq` of its ordered stream sent, for types that have one
    client_messages: ClassVar[tuple[type[ClientMessage], ...]] = ()
    _registry: ClassVar[dict[str, type[ClientMessage]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._registry = protocol.message_registry(
            protocol.COMMON_CLIENT_MESSAGES + cls.client_messages
        )
        kind = getattr(cls, "connection_type", None)
        if kind is not None:  # bound once per class, not looked up per frame
            cls._fanout_latency = instruments.FANOUT_LATENCY.labels(kind)

    # -- hooks for connection types -----------------------------------------------------------

    async def authorize(self) -> None:
        """Raise ProtocolError(AUTHORIZATION_FAILED) to refuse this user on this resource."""

    async def on_connected(self) -> None:
        """After `connection.established` has been sent: join groups, send a snapshot."""

    async def on_disconnected(self, code: int) -> None:
        """After the socket closed: leave presence, flush counters."""

    @property
    def connection_id(self) -> str:
        return self.auth.connection_id

    @property
    def max_message_bytes(self) -> int:
        return settings.REALTIME_MAX_MESSAGE_BYTES[self.connection_type]

    @property
    def latency_ms(self) -> float | None:
        return self.io.latency_ms

    # -- sending ------------------------------------------------------------------------------

    async def send_event(self, message: dict[str, Any]) -> None:
        await self.send_text(protocol.encode(message))

    async def send_text(self, text: str) -> None:
        """Every frame to the client leaves through here (or through `frame`, its synchronous
        half), so that what it has not acknowledged can be counted: a client that stops reading
        is cut off (4009) before it costs unbounded memory. Acknowledgement is the pong to a
        ping; a ping goes out after every REALTIME_FLOW_PING_BYTES of traffic as well as on the
        heartbeat."""
        if self._closing:
            return
        write = self.frame(text)
        if write is not True:
            await write

    def frame(self, text: str, framed: bytes | None = None) -> Direct:
        """Count one frame out and send it: written straight to the socket when it can be
        (realtime.direct; True, nothing to await), else the ASGI send to await, or, when the
        flow-control budget says so, the send followed by a ping or by the 4009 close. The
        fan-out layer calls this for each local member, with the event framed once (`framed`)."""
        io = self.io
        io.bytes_out += len(text)
        io.messages_out += 1
        if (
            io.bytes_out - io.bytes_acked > settings.REALTIME_MAX_UNACKED_BYTES
            or io.bytes_out - io.bytes_at_last_ping > settings.REALTIME_FLOW_PING_BYTES
        ):
            return self._send_then_control(text)
        wire = self._wire
        if wire is not None and wire(framed if framed is not None else text_frame(text)):
            return True
        return self.base_send({"type": "websocket.send", "text": text})

    async def _send_then_control(self, text: str) -> None:
        io = self.io
        await self.base_send({"type": "websocket.send", "text": text})
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
        elif not self._closing:
            await self.send_ping()

    def write_published(self, event: dict[str, Any]) -> Direct:
        """A fanned-out event's pre-encoded text, written by the fan-out layer (`frame`): framed
        once per process (realtime.direct) when it goes straight to the socket."""
        return self.frame(event["text"], event_frame(event) if self._wire is not None else None)

    def write_next(self, event: dict[str, Any]) -> Direct:
        """The fast path of an ordered stream, for the fan-out layer: only the very next `seq`
        (`last_seq`, kept by connection types with a stream), and only while no request,
        replay or gap fill of this socket is in progress (`_queued`). Anything else goes to the
        queue, where the connection type's handler puts it in order; an event already sent is
        taken and dropped."""
        if self._closing or self._paused:
            return False
        seq = event["seq"]
        if seq <= self.last_seq:
            return True  # already sent
        if seq != self.last_seq + 1:
            return False
        self.last_seq = seq
        return self.write_published(event)

    async def send_published(self, event: dict[str, Any]) -> None:
        """A fanned-out event (events.broadcast): its pre-encoded text, and the time from its
        publication after commit to this send (tripsage_fanout_latency_seconds; the fan-out
        layer measures it once per event and process instead, after its last local send)."""
        published = event.get("published_at")
        if published is not None and not fanout(self.channel_layer).observes_fanout:
            self._fanout_latency.observe(max(0.0, time.time() - published))
        await self.send_text(event["text"])

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

    async def send_error(self, error: ProtocolError) -> None:
        self.io.errors += 1
        instruments.ERRORS.labels(self.connection_type, error.code).inc()
        await self.send_event(error.envelope())

    async def close_with(self, envelope: dict[str, Any], code: CloseCode) -> None:
        """Tell the client why, then close: a client never has to guess from a bare code."""
        if self._closing:
            return
        self._closing = True  # first: no send below may start another close
        self._closed_as = code
        await self.base_send({"type": "websocket.send", "text": protocol.encode(envelope)})
        await self.close(code=int(code))

    # -- lifecycle ----------------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels 4.2+ awaits aclose_old_connections() (a thread hop) before every event,
        # group messages included. Our database work all goes through events.aio.db,
        # which closes stale connections itself, so the per-event hop is pure cost.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"].startswith("websocket."):
            await handler(message)
            return
        try:
            await handler(message)
        except Exception:
            # A fault of ours in a group event (database or Redis away): tell the client and
            # close cleanly, so that the socket's bookkeeping is undone by the disconnect.
            logger.exception("group event %s failed on %s", message["type"], self.connection_type)
            await self.close_with(
                protocol.error_message(
                    ErrorCode.SERVER_ERROR,
                    "The server failed to deliver an event; reconnect and resume.",
                    details={"retryable": True},
                ),
                CloseCode.SERVER_FAULT,
            )

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        auth: AuthContext | None = self.scope.get("auth")
        if auth is None:
            raise RuntimeError(
                f"{type(self).__name__} must be routed behind realtime.auth.JWTAuthMiddleware."
            )
        self.user = self.scope["user"]
        self.user_id: int = self.user.pk  # read per fanned-out event: no model property there
        self.auth = auth
        self.token_expires_at = auth.token.expires_at
        self.io = _SocketState(time.monotonic())
        self._wire = writer_for(self.base_send)  # None: every frame through the ASGI send
        self._closing = False
        self._paused = 0  # > 0: fanned-out events wait in the queue (see `_queued`)
        self._joined: list[str] = []

        try:
            await self._open()
        except ProtocolError as error:
            await self.close_with(error.envelope(), CloseCode.AUTHORIZATION_FAILED)
        except Exception:
            # A fault of ours while opening: say so (retryable) rather than drop the socket.
            logger.exception("opening a %s connection failed", self.connection_type)
            await self.close_with(
                protocol.error_message(
                    ErrorCode.SERVER_ERROR,
                    "The server could not open this connection; try again.",
                    details={"retryable": True},
                    request_id=auth.request_id,
                ),
                CloseCode.SERVER_FAULT,
            )

    async def _open(self) -> None:
        auth = self.auth
        await self.authorize()

        await connections().register(self)
        self._opened = True  # registered for revocation and counted as open
        collector().opened(self)
        # No accept: JWTAuthMiddleware accepted the socket before authenticating it.
        instruments.CONNECTIONS_OPEN.labels(self.connection_type).inc()
        rate = message_rate(self.connection_type)
        await self.send_event(
            protocol.server_message(
                "connection.established",
                request_id=auth.request_id,
                connection_id=self.connection_id,
                connection_type=str(self.connection_type),
                user={"id": self.user.pk, "username": self.user.get_username()},
                heartbeat_interval=settings.REALTIME_HEARTBEAT_SECONDS,
                token_expires_at=protocol.iso(self.token_expires_at),
                limits={
                    "max_message_bytes": self.max_message_bytes,
                    "heartbeat_timeout_seconds": settings.REALTIME_HEARTBEAT_TIMEOUT_SECONDS,
                    "token_grace_seconds": settings.REALTIME_TOKEN_GRACE_SECONDS,
                    "messages_per_minute": rate.per_minute,
                    "message_burst": rate.burst,
                },
            )
        )
        # Where this user's message budget stands, before the connection type's own opening.
        await self.send_rate_limit_status(
            await throttle().message(self.user.pk, self.connection_type, 0)
        )
        ticker().add(self)
        await self.on_connected()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self._closing = True
        ticker().discard(self)
        opened = getattr(self, "_opened", False)
        self._opened = False  # a second disconnect must not count the socket out twice
        if opened:
            connections().unregister(self)
        fanout(self.channel_layer).detach(self.channel_name)
        if opened:
            instruments.CONNECTIONS_OPEN.labels(self.connection_type).dec()
            closed_as = getattr(self, "_closed_as", None)
            code = message.get("code")
            collector().closed_socket(
                self,
                int(closed_as) if closed_as is not None else code,
                closed_as.name.lower() if closed_as is not None else "client_closed",
            )
        for group in getattr(self, "_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if hasattr(self, "auth"):
            await self.on_disconnected(message.get("code", CloseCode.NORMAL))
        raise StopConsumer()

    @contextlib.asynccontextmanager
    async def _queued(self) -> AsyncIterator[None]:
        """While this socket's own request (or a replay) is handled, fanned-out events for it
        wait in its queue instead of being written by the layer: the client gets its `ack`
        (or the whole replay) before the events that follow it."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self._joined.append(group)

    # -- receiving ----------------------------------------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        io = self.io
        io.last_heard = time.monotonic()
        io.last_activity = time.time()
        io.messages_in += 1
        frame = message.get("text") or message.get("bytes") or ""
        io.bytes_in += len(frame)
        if self._closing:
            return
        request_id = None
        try:
            data = protocol.parse_json(
                message.get("text"), message.get("bytes"), max_bytes=self.max_message_bytes
            )
            request_id = protocol.request_id_of(data)
            kind = data.get("type")
            counted = not (isinstance(kind, str) and kind in protocol.UNTHROTTLED_TYPES)
            if counted and not await self._admit(request_id):
                return
            parsed = protocol.validate(data, self._registry)
            instruments.MESSAGES_RECEIVED.labels(self.connection_type, parsed.type).inc()
            if parsed.type == "resume":
                io.reconnects = 1  # this socket is a client's reconnect (it resumed)
            handler = getattr(self, "on_" + parsed.type.replace(".", "_"))
            await handler(parsed)
        except ProtocolError as error:
            if error.request_id is None:
                error.request_id = request_id
            await self.send_error(error)
        except CollaborationError as error:
            await self.send_error(domain_error(error, request_id))
        except Exception:
            # A fault of ours: say so, keep the socket, never 1011 for one bad message.
            logger.exception("handler failed on %s connection", self.connection_type)
            await self.send_error(
                ProtocolError(
                    ErrorCode.SERVER_ERROR,
                    "The server failed to process this message.",
                    details={"retryable": True},
                    request_id=request_id,
                )
            )

    async def _admit(self, request_id: str | None) -> bool:
        """Take one message from the user's budget for this connection type (shared by all of
        the user's sockets on every process). Over it: RATE_LIMIT_EXCEEDED and the message is
        not processed; far over it for a whole window: closed with 4029."""
        decision = await throttle().message(self.user.pk, self.connection_type)
        io = self.io
        if decision.allowed:
            if decision.remaining < 0.2 * decision.rate.burst:
                if not io.low_notified:
                    io.low_notified = True
                    await self.send_rate_limit_status(decision)
            else:
                io.low_notified = False
            return True
        instruments.RATE_LIMIT_REFUSALS.labels(self.connection_type, "message").inc()
        now = time.monotonic()
        if now - io.refusals_since >= decision.rate.window:
            io.refusals, io.refusals_since = 0, now
        io.refusals += 1
        details = decision.refusal_details()
        if io.refusals > settings.REALTIME_FLOOD_FACTOR * decision.rate.per_minute:
            await self.close_with(
                protocol.error_message(
                    ErrorCode.RATE_LIMIT_EXCEEDED,
                    "Closed for flooding: far more messages than the rate limit allows.",
                    details={**details, "reason": "flood", "refused": io.refusals},
                    request_id=request_id,
                ),
                CloseCode.RATE_LIMITED,
            )
            return False
        await self.send_error(
            ProtocolError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                "Message rate limit exceeded",
                details=details,
                request_id=request_id,
            )
        )
        return False

    async def send_rate_limit_status(self, decision: Decision) -> None:
        await self.send_event(
            protocol.server_message("rate_limit_status", **decision.status_fields())
        )

    async def on_rate_limit_status(self, message: protocol.RateLimitStatus) -> None:
        decision = await throttle().message(self.user.pk, self.connection_type, 0)
        await self.send_event(
            protocol.server_message(
                "rate_limit_status", request_id=message.id, **decision.status_fields()
            )
        )

    async def on_ping(self, message: protocol.Ping) -> None:
        await self.send_event(protocol.server_message("pong", request_id=message.id))

    async def on_pong(self, message: protocol.Pong) -> None:
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

    async def on_auth_refresh(self, message: protocol.AuthRefresh) -> None:
        try:
            user, verified = await db(authenticate_token)(message.token)
        except AuthFailure as failure:
            if failure.reason in (
                AuthFailureReason.USER_INACTIVE,
                AuthFailureReason.USER_NOT_FOUND,
            ):
                await self.close_with(failure.envelope(message.id), CloseCode.AUTHENTICATION_FAILED)
                return
            # The socket lives on under the token it already has, until that one expires.
            instruments.ERRORS.labels(self.connection_type, ErrorCode.AUTHENTICATION_FAILED).inc()
            await self.send_event(failure.envelope(message.id))
            return
        if user.pk != self.user.pk:
            failure = AuthFailure(
                AuthFailureReason.USER_MISMATCH, "A refreshed token must belong to the same user."
            )
            await self.close_with(failure.envelope(message.id), CloseCode.AUTHENTICATION_FAILED)
            return
        self.user = user
        self.token_expires_at = verified.expires_at
        await self.send_event(
            protocol.server_message(
                "auth.refreshed",
                request_id=message.id,
                token_expires_at=protocol.iso(verified.expires_at),
            )
        )

    # -- group events -------------------------------------------------------------------------

    async def close_by_operator(self) -> None:
        """An operator's "disconnect" (admin): say so, then close with 4010."""
        await self.close_with(
            protocol.error_message(
                ErrorCode.NETWORK_ERROR,
                "An operator closed this connection.",
                details={"reason": "closed_by_operator"},
            ),
            CloseCode.CLOSED_BY_OPERATOR,
        )

    async def realtime_user_revoked(self, event: dict[str, Any]) -> None:
        failure = AuthFailure(AuthFailureReason.USER_INACTIVE, "User account is disabled.")
        await self.close_with(failure.envelope(), CloseCode.AUTHENTICATION_FAILED)

    # -- heartbeat and token expiry ---------------------------------------------------------

    async def tick(self, now: float, wall: float) -> None:
        """Called by the process's ticker: close sockets whose token expired without a refresh or
        that went silent; ping when the heartbeat is due."""
        if self._closing:
            return
        if wall >= self.token_expires_at.timestamp() + settings.REALTIME_TOKEN_GRACE_SECONDS:
            failure = AuthFailure(
                AuthFailureReason.EXPIRED,
                "Invalid or expired token",
                expires_at=self.token_expires_at,
            )
            await self.close_with(failure.envelope(), CloseCode.AUTHENTICATION_FAILED)
        elif now - self.io.last_heard >= settings.REALTIME_HEARTBEAT_TIMEOUT_SECONDS:
            await self.close_with(
                protocol.error_message(
                    ErrorCode.NETWORK_ERROR,
                    f"Nothing heard from the client for {now - self.io.last_heard:.0f} s.",
                    details={"reason": "heartbeat_timeout"},
                ),
                CloseCode.HEARTBEAT_TIMEOUT,
            )
        elif now >= self.io.next_ping:
            self.io.next_ping = now + settings.REALTIME_HEARTBEAT_SECONDS
            await self.send_ping()
