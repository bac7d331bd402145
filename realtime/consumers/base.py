"""The base consumer: a socket's life (open, close), dispatch, parsing and error envelopes.

A connection type subclasses it, names its `connection_type` and `client_messages`, and writes one
`on_<type>` handler per message type (`trip.update` -> `on_trip_update`). What the socket writes
(flow control, heartbeat) is realtime.flow, the message budget realtime.admission, the token's
refresh and expiry realtime.token_refresh; ordered streams (trip and chat) are realtime.streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, cast

from asgiref.typing import WebSocketConnectEvent, WebSocketDisconnectEvent, WebSocketReceiveEvent
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError

import protocol
from collaboration.errors import CollaborationError, InvalidChange
from events import security
from events.fanout import fanout
from metrics import instruments
from metrics.collector import collector
from protocol import AuthFailureReason, ClientMessage, CloseCode, ErrorCode, ProtocolError
from realtime.admission import RateLimitedConsumer
from realtime.auth import AuthContext, record_for_socket
from realtime.connect_gate import socket_opened
from realtime.connections import connections
from realtime.convergence import stream_check
from realtime.flow import HandshakeTally, utf8_size
from realtime.throttling import message_rate
from realtime.timers import ticker
from realtime.token_refresh import TokenRefreshConsumer
from realtime.tokens import AuthFailure

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


class RealtimeConsumer(RateLimitedConsumer, TokenRefreshConsumer):
    client_messages: ClassVar[tuple[type[ClientMessage], ...]] = ()
    # Trip and chat sockets: the Trip column holding their stream's head (realtime.convergence).
    stream_column: ClassVar[str | None] = None
    _registry: ClassVar[dict[str, type[ClientMessage]]] = {}
    # What `release` must undo; set as each is taken, so that it undoes exactly those.
    _released = False
    _counted = False  # in CONNECTIONS_OPEN and the collector's open sockets
    tick_slot: list[Any] | None = None  # the ticker's (realtime.timers)

    # Every attribute a socket's consumer sets on itself, here and in each connection type (its
    # own `instance_attributes`, added to these); tests/realtime/test_base_consumer.py checks.
    # CPython 3.11 keeps a class's instance attributes in one keys table shared by all its
    # instances, but each new instance takes a place in that table away (30 at most): in a
    # connect storm dozens of consumers exist before the first one reaches the attributes it
    # sets after its first database read, the table is closed by then, and every socket got a
    # dict of its own (832 bytes instead of 288, bench S3). So the first instance of each class
    # sets (and deletes) them all at once, while the table still has room.
    instance_attributes: ClassVar[tuple[str, ...]] = (
        "scope", "base_send", "channel_layer", "channel_name", "_turn", "_task", "_pump",
        "_failure", "io", "_direct_write", "closing", "closed_as", "user", "user_id", "auth",
        "token_expires_at", "_joined", "_counted", "_released", "tick_slot",
    )  # fmt: skip
    _all_instance_attributes: ClassVar[tuple[str, ...]] = instance_attributes
    _attributes_shared: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._registry = protocol.message_registry(
            protocol.COMMON_CLIENT_MESSAGES + cls.client_messages
        )
        names = (
            name
            for klass in reversed(cls.__mro__)
            for name in vars(klass).get("instance_attributes", ())
        )
        cls._all_instance_attributes = tuple(dict.fromkeys(names))
        cls._attributes_shared = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if not cls._attributes_shared:
            cls._attributes_shared = True
            for name in cls._all_instance_attributes:  # deleted again: absent means not yet
                setattr(self, name, None)
                delattr(self, name)

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

    # -- lifecycle ----------------------------------------------------------------------------

    async def loop_failed(self, error: Exception) -> None:
        """A fault that escaped every handler (realtime.consumer_loop). Channels ends the
        application on it without calling websocket_disconnect, and daphne then closes with a
        bare 1011 and cancels nothing else: here the client gets the SERVER_ERROR envelope and
        a close."""
        logger.exception("a %s connection failed outside its handlers", self.connection_type)
        await self._close_after_fault(self.base_send)

    async def loop_ended(self) -> None:
        """Whatever ended the loop (the client's close, such a fault, a cancellation), the
        socket's holdings are released. Shielded: a second cancellation (daphne's shutdown)
        must not cut the release short."""
        await asyncio.shield(self.release(None))

    async def _close_after_fault(self, send: Any) -> None:
        """The SERVER_ERROR envelope (unless the socket was closing already) and the close."""
        try:
            if not getattr(self, "closing", False):
                self.closing = True
                self.closed_as = CloseCode.SERVER_FAULT
                envelope = protocol.error_message(
                    ErrorCode.SERVER_ERROR,
                    "The server failed on this connection; reconnect and resume.",
                    details={"retryable": True},
                )
                await send({"type": "websocket.send", "text": protocol.encode(envelope)})
            # Always, even while closing: a socket left open with no application is a ghost.
            await send({"type": "websocket.close", "code": int(CloseCode.SERVER_FAULT)})
        except Exception:
            logger.exception("closing a failed %s connection failed", self.connection_type)

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
            # close cleanly; `release` undoes the socket's bookkeeping.
            logger.exception("group event %s failed on %s", message["type"], self.connection_type)
            await self.close_with(
                protocol.error_message(
                    ErrorCode.SERVER_ERROR,
                    "The server failed to deliver an event; reconnect and resume.",
                    details={"retryable": True},
                ),
                CloseCode.SERVER_FAULT,
            )

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        # Both keys are JWTAuthMiddleware's: Channels' scope type knows neither `auth` nor this
        # `user` (it types the key for its own AuthMiddleware's lazy user).
        auth = cast("AuthContext | None", self.scope.get("auth"))
        if auth is None:
            raise RuntimeError(
                f"{type(self).__name__} must be routed behind realtime.auth.JWTAuthMiddleware."
            )
        self.user = cast(User, self.scope["user"])
        self.user_id: int = self.user.pk  # read per fanned-out event: no model property there
        self.auth = auth
        self.token_expires_at = auth.token.expires_at
        self.start_flow()
        self._joined: list[str] = []
        # The handshake's frames (the token, and any refused before it) crossed this socket
        # too: a client counting its frames counts them (docs/metrics.md).
        handshake = cast("HandshakeTally | None", self.scope.get("handshake"))
        if handshake is not None:
            io = self.io
            io.messages_in, io.bytes_in = handshake.frames_in, handshake.bytes_in
            io.messages_out, io.bytes_out = handshake.frames_out, handshake.bytes_out
            io.errors = handshake.errors

        try:
            await self._open()
        except ProtocolError as error:
            record_for_socket(
                self,
                security.Event.ACCESS_DENIED,
                reason=str(error.details.get("reason") or "not_allowed"),
                action="connect",
                path=self.scope.get("path"),
            )
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
        finally:
            # Open, an idle socket reads only the client's address of its scope (the metrics):
            # the rest (route, headers, user) need not live as long as it does (bench S3).
            kept = {"type": "websocket", "client": self.scope.get("client")}
            self.scope = cast(Any, kept)

    async def _open(self) -> None:
        budget = self.look_at_budget()  # meanwhile: Redis while the database answers below
        try:
            await self._open_with(budget)
        finally:
            if not budget.done():
                budget.cancel()
            elif not budget.cancelled():
                budget.exception()  # retrieved: a failed look was reported where it mattered

    async def _open_with(self, budget: asyncio.Task[Any]) -> None:
        auth = self.auth
        await self.authorize()

        # Each holding below is undone by `release`, whatever happens after it is taken.
        await connections().register(self)  # registered for revocation
        collector().opened(self)
        # No accept: JWTAuthMiddleware accepted the socket before authenticating it.
        instruments.CONNECTIONS_OPEN.labels(self.connection_type).inc()
        self._counted = True
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
        socket_opened(self.scope)  # admission control counts it as opening no more
        # Where this user's message budget stands, before the connection type's own opening.
        await self.send_budget(decisions=budget)
        ticker().add(self)
        await self.on_connected()
        if self.stream_column is not None:
            stream_check().start()

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        await self.release(message.get("code"))
        raise StopConsumer()

    async def release(self, code: int | None) -> None:
        """Everything the socket holds, released once, whatever ended it (the client's close,
        a fault that escaped every handler, a cancellation): its ticker entry, its place in the
        live-socket registry, the fan-out layer's handlers, its metrics, its groups and what
        the connection type holds (presence). A step that fails is logged and the rest run.
        The connection lease is the middleware's (realtime.auth), released when this returns."""
        if self._released:
            return
        self._released = True
        self.closing = True  # nothing more goes out
        steps: list[tuple[str, Any]] = [("the ticker entry", lambda: ticker().discard(self))]
        if hasattr(self, "channel_name"):
            steps.append(
                (
                    "the fan-out handlers",
                    lambda: fanout(self.channel_layer).detach(self.channel_name),
                )
            )
        if hasattr(self, "auth"):
            steps.append(("the registry entry", lambda: connections().unregister(self)))
        if self._counted:
            steps.append(("the metrics", lambda: self._count_closed(code)))
        for what, step in steps:
            try:
                step()
            except Exception:
                logger.exception(
                    "releasing %s of a %s connection failed", what, self.connection_type
                )
        if hasattr(self, "auth"):  # websocket_connect ran: the connection type's own holdings
            try:
                await self.on_disconnected(code if code is not None else CloseCode.NORMAL)
            except Exception:
                logger.exception("on_disconnected of a %s connection failed", self.connection_type)
        for group in getattr(self, "_joined", ()):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.exception("leaving group %s failed", group)

    def _count_closed(self, code: int | None) -> None:
        self._counted = False
        instruments.CONNECTIONS_OPEN.labels(self.connection_type).dec()
        closed_as = getattr(self, "closed_as", None)
        collector().closed_socket(
            self,
            int(closed_as) if closed_as is not None else code,
            closed_as.name.lower() if closed_as is not None else "client_closed",
        )

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self._joined.append(group)

    async def tick(self, now: float, wall: float) -> None:
        """Called by the process's ticker (realtime.timers): the token's expiry, then the
        heartbeat."""
        if self.closing:
            return
        if not await self.close_if_token_expired(wall):
            await self.heartbeat(now)

    def next_tick(self, now: float, wall: float) -> float:
        """When `tick` has something to do next (monotonic): the heartbeat's next ping or
        silence deadline, or the end of the token's grace."""
        return min(self.heartbeat_due(), self.token_due(now, wall))

    # -- receiving ----------------------------------------------------------------------------

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        io = self.io
        io.last_heard = time.monotonic()
        io.last_activity = time.time()
        io.messages_in += 1
        text = message.get("text")
        io.bytes_in += utf8_size(text) if text is not None else len(message.get("bytes") or b"")
        if self.closing:
            return
        request_id = None
        kind: Any = None  # the message type, once the frame parsed
        try:
            data = protocol.parse_json(
                message.get("text"), message.get("bytes"), max_bytes=self.max_message_bytes
            )
            request_id = protocol.request_id_of(data)
            kind = data.get("type")
            counted = not (isinstance(kind, str) and kind in protocol.UNTHROTTLED_TYPES)
            if counted and not await self.admit(request_id):
                return
            if kind == "auth.refresh" and not await self.admit_refresh(request_id):
                return  # refused before its token is looked at
            parsed = protocol.validate(data, self._registry)
            instruments.MESSAGES_RECEIVED.labels(self.connection_type, parsed.type).inc()
            if parsed.type == "resume":
                io.reconnects = 1  # this socket is a client's reconnect (it resumed)
            handler = getattr(self, "on_" + parsed.type.replace(".", "_"))
            await handler(parsed)
        except ProtocolError as error:
            if error.request_id is None:
                error.request_id = request_id
            await self.send_refusal(error, kind)
        except CollaborationError as error:
            await self.send_refusal(domain_error(error, request_id), kind)
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

    async def stream_catch_up(self, event: dict[str, Any]) -> None:
        """realtime.convergence found this socket behind its stream's head: fill from the log."""
        stream = getattr(self, "stream", None)
        if stream is None or self.closing:
            return
        try:
            await stream.catch_up(event["seq"])
        except DatabaseError as error:  # the database away: the next check sends another
            logger.warning("a catch-up failed, the database is unavailable: %s", error)

    # -- closed from outside (realtime.connections) -------------------------------------------

    async def send_refusal(self, error: ProtocolError, kind: Any) -> None:
        """A message's error envelope; a refused right (AUTHORIZATION_FAILED) is also a security
        record, with the message's type as its action."""
        if error.code is ErrorCode.AUTHORIZATION_FAILED:
            record_for_socket(
                self,
                security.Event.ACCESS_DENIED,
                reason=str(error.details.get("reason") or "not_allowed"),
                action=kind if isinstance(kind, str) else None,
            )
        await self.send_error(error)

    async def close_by_operator(self) -> None:
        """An operator's "disconnect" (admin): say so, then close with 4010."""
        record_for_socket(self, security.Event.SOCKET_CLOSED_BY_OPERATOR)
        await self.close_with(
            protocol.error_message(
                ErrorCode.NETWORK_ERROR,
                "An operator closed this connection.",
                details={"reason": "closed_by_operator"},
            ),
            CloseCode.CLOSED_BY_OPERATOR,
        )

    async def membership_lost(self) -> None:
        """The socket's user is no member of its trip any more (realtime.connections' re-check):
        closed as for `member.removed`."""
        trip_id = getattr(self, "trip_id", None)
        if trip_id is None:
            return
        await self.close_with(
            protocol.not_a_member(trip_id, anymore=True).envelope(), CloseCode.AUTHORIZATION_FAILED
        )

    async def realtime_user_revoked(self, event: dict[str, Any]) -> None:
        record_for_socket(self, security.Event.SOCKET_REVOKED, reason="user_inactive")
        failure = AuthFailure(AuthFailureReason.USER_INACTIVE, "User account is disabled.")
        await self.close_with(failure.envelope(), CloseCode.AUTHENTICATION_FAILED)
