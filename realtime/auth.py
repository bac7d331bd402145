"""The WebSocket auth middleware: the token comes in the first message.

It checks the origin, accepts, and verifies the token (realtime.tokens) before the consumer
runs; the refused-origin log and the security records of an open socket live here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

import protocol
from events import security
from metrics import instruments
from protocol import AuthFailureReason, CloseCode, ErrorCode
from protocol.origins import refusal_advice, socket_origin_allowed
from realtime.flow import SEND_ON_CLOSED, HandshakeTally
from realtime.throttling import throttle
from realtime.tokens import (
    AuthFailure,
    VerifiedToken,
    active_user,
    user_batcher,
    verify_access_token,
)

logger = logging.getLogger(__name__)

# Query-string parameters that look like credentials; a socket carrying one is refused.
_CREDENTIAL_PARAMS = {"token", "access", "access_token", "jwt", "auth", "authorization"}


@dataclass(frozen=True, slots=True)
class AuthContext:
    """What the middleware puts in `scope["auth"]` for the consumer."""

    connection_id: str
    token: VerifiedToken
    request_id: str | None  # the `id` of the client's auth message, answered by the consumer


class OriginRefusalLog:
    """A WARNING for a refused origin, once per origin per `interval` seconds: the browser sees
    only a failed handshake and daphne logs only WSREJECT, so this says which origin and what
    to change. Bounded, as origins are client input."""

    def __init__(
        self,
        *,
        interval: float = 300.0,
        capacity: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.capacity = capacity
        self.clock = clock
        self._last: dict[str, float] = {}

    def refused(self, origin: str, host: str | None) -> bool:
        """Log the refusal unless this origin was logged within the interval; whether it was."""
        now = self.clock()
        last = self._last.get(origin)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= self.capacity:
            self._last = {o: t for o, t in self._last.items() if now - t < self.interval}
            if len(self._last) >= self.capacity:
                return False  # a flood of distinct origins: its first `capacity` were said
        self._last[origin] = now
        logger.warning(
            "websocket refused: Origin %r is not allowed (Host %r): %s",
            origin,
            host,
            refusal_advice(origin),
        )
        return True


origin_refusals = OriginRefusalLog()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _text_frame(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "websocket.send", "text": protocol.encode(message)}


class JWTAuthMiddleware:
    """Accepts the socket, waits for `{"token": ...}` as the first message, and only then hands
    the connection to the consumer with `scope["user"]` and `scope["auth"]` set.

    The consumer sees an ordinary `websocket.connect` on a socket that is already open, so it
    must not send `websocket.accept` (realtime.consumers.base does not). Tokens in the query
    string are refused, because URLs end up in logs. Origins are checked before accept.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        # This frame lives as long as the socket: once the consumer runs, it keeps only the
        # consumer's coroutine, the send callable and what the lease's release needs.
        lease: tuple[str, str] | None = None  # (token subject, connection id) once a slot is held
        try:
            # The handshake's security records carry the client's address (and the user's id
            # once the token is verified); only the handshake's: tasks it starts for the whole
            # process (a batcher's, a listener's) must not inherit them.
            with security.bind(remote_addr=_client_address(scope)):
                authenticated = await self._handshake(scope, receive, send)
            if authenticated is None:
                return None
            auth: AuthContext = authenticated["auth"]
            lease = (auth.token.user_id, auth.connection_id)  # the token subject's slot
            security.record(
                security.Event.SOCKET_AUTHENTICATED,
                user_id=authenticated["user"].pk,
                connection_id=auth.connection_id,
                remote_addr=_client_address(scope),
                path=scope.get("path"),
            )
            # The socket is open already: consumers behind this middleware never send an
            # accept, and their sends reach the server's own send callable with no wrapper.
            app = self.app(authenticated, ReplayConnect(receive), send)
            del scope, receive, authenticated
            return await app
        except SEND_ON_CLOSED:
            return None  # the client closed while we answered it: nothing to tell anyone
        except Exception:
            # A fault of ours (the consumers release their own; this is the handshake's):
            # said and closed with a documented code, never daphne's bare 1011 and traceback.
            logger.exception("authenticating a websocket connection failed")
            await _close_after_fault(send)
            return None
        finally:
            # The connection lease, whatever ended the socket (a cancellation included).
            if lease is not None:
                await asyncio.shield(throttle().release_slot(*lease))

    async def _handshake(
        self, scope: dict[str, Any], receive: Any, send: Any
    ) -> dict[str, Any] | None:
        """Origin check, accept, and authentication; the consumer's scope, or None."""
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return None

        origin, host = _header(scope, b"origin"), _header(scope, b"host")
        if not socket_origin_allowed(origin, host):
            if origin is not None:
                origin_refusals.refused(origin, host)
            security.record(
                security.Event.SOCKET_AUTH_FAILED,
                reason="origin_not_allowed",
                origin=origin,
                path=scope.get("path"),
            )
            # Before accept: the browser sees the handshake refused (HTTP 403).
            await send({"type": "websocket.close", "code": int(CloseCode.AUTHORIZATION_FAILED)})
            return None

        await send({"type": "websocket.accept"})

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if _CREDENTIAL_PARAMS & {key.lower() for key in query}:
            failure = AuthFailure(
                AuthFailureReason.TOKEN_IN_QUERY_STRING,
                "Tokens in the URL are refused (they end up in logs): send "
                '{"token": "<access token>"} as the first message.',
            )
            await self._refuse(send, failure.envelope())
            return None

        # Throttling, before any work for this socket: new connections per address here,
        # concurrent sockets per user once the token names the user.
        decision = await throttle().connect(_client_address(scope))
        if not decision.allowed:
            await self._refuse_rate(
                send,
                "Too many new connections from this address.",
                {"reason": "connect_rate", **decision.refusal_details()},
                "connect_rate",
            )
            return None

        tally = HandshakeTally()
        result = await self._await_auth(receive, send, tally)
        if result is None:
            return None
        verified, request_id = result
        connection_id = protocol.new_id()
        # The user's read and the connection slot together: one round trip fewer per connect
        # (the slot is the token subject's, which is the user's id; released below if the
        # user may not connect after all).
        found, slot = await asyncio.gather(
            user_batcher(verified.user_id),
            throttle().acquire_slot(verified.user_id, connection_id),
            return_exceptions=True,
        )
        if isinstance(slot, BaseException):
            if isinstance(found, BaseException):
                logger.info("reading a connecting user failed too", exc_info=found)
            raise slot
        allowed, held = slot
        try:
            if isinstance(found, BaseException):
                raise found
            security.bind_more(user_id=verified.user_id)
            user = active_user(found)
        except Exception as error:
            if allowed:
                await throttle().release_slot(verified.user_id, connection_id)
            if isinstance(error, AuthFailure):
                logger.info("websocket auth refused: %s", error.reason)
                await self._refuse(send, error.envelope(request_id))
                return None
            # A fault of ours (the database away): SERVER_ERROR, retryable, then 4011, as
            # for any fault while opening (docs/protocol.md), never an unhandled 1011.
            logger.error("opening a websocket failed: the user could not be read", exc_info=error)
            envelope = protocol.error_message(
                ErrorCode.SERVER_ERROR,
                "The server could not check your credentials; try again.",
                details={"retryable": True},
                request_id=request_id,
            )
            await self._refuse(send, envelope, CloseCode.SERVER_FAULT)
            return None
        if not allowed:
            limit = settings.REALTIME_MAX_CONNECTIONS_PER_USER
            await self._refuse_rate(
                send,
                f"Too many open connections for this user (at most {limit}).",
                {"reason": "too_many_connections", "limit": limit, "current": held},
                "concurrent",
                request_id,
            )
            return None
        return dict(
            scope,
            user=user,
            auth=AuthContext(connection_id=connection_id, token=verified, request_id=request_id),
            handshake=tally,
        )

    async def _await_auth(
        self, receive: Any, send: Any, tally: HandshakeTally
    ) -> tuple[VerifiedToken, str | None] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.REALTIME_AUTH_TIMEOUT_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                failure = AuthFailure(
                    AuthFailureReason.TIMEOUT,
                    f"No authentication within {settings.REALTIME_AUTH_TIMEOUT_SECONDS:g} s.",
                )
                await self._refuse(send, failure.envelope())
                return None
            if message["type"] == "websocket.disconnect":
                return None
            if message["type"] != "websocket.receive":
                continue
            tally.received(message)
            request_id = None
            try:
                data = protocol.parse_json(
                    message.get("text"),
                    message.get("bytes"),
                    max_bytes=max(settings.REALTIME_MAX_MESSAGE_BYTES.values()),
                )
                request_id = protocol.request_id_of(data)
                auth = protocol.parse_auth(data)
            except protocol.ProtocolError as error:
                # Anything but a well-formed auth message is refused; the clock keeps running.
                if error.code is ErrorCode.AUTHENTICATION_FAILED and (
                    error.details.get("reason") != AuthFailureReason.NOT_AUTHENTICATED
                ):
                    await self._refuse(send, error.envelope())
                    return None
                frame = _text_frame(error.envelope())
                await send(frame)
                tally.error_sent(frame)
                continue
            try:
                verified = verify_access_token(auth.token)  # the signature: no I/O
            except AuthFailure as failure:
                logger.info("websocket auth refused: %s", failure.reason)
                await self._refuse(send, failure.envelope(request_id))
                return None
            return verified, request_id

    async def _refuse(
        self, send: Any, envelope: dict[str, Any], code: CloseCode = CloseCode.AUTHENTICATION_FAILED
    ) -> None:
        """Every refusal of a handshake after accept: the envelope, the close, a security record
        with the envelope's reason (or its code)."""
        error = envelope.get("error") or {}
        reason = (error.get("details") or {}).get("reason") or error.get("code") or "refused"
        security.record(security.Event.SOCKET_AUTH_FAILED, reason=str(reason))
        await send(_text_frame(envelope))
        await send({"type": "websocket.close", "code": int(code)})

    async def _refuse_rate(
        self,
        send: Any,
        message: str,
        details: dict[str, Any],
        limit: str,
        request_id: str | None = None,
    ) -> None:
        instruments.RATE_LIMIT_REFUSALS.labels("any", limit).inc()
        envelope = protocol.error_message(
            ErrorCode.RATE_LIMIT_EXCEEDED, message, details=details, request_id=request_id
        )
        await self._refuse(send, envelope, CloseCode.RATE_LIMITED)


def record_for_socket(consumer: Any, event: security.Event, **fields: Any) -> None:
    """A security record for an open socket's consumer: its user, connection id, type and
    address, given explicitly (the code calling may run in a task of the whole process)."""
    security.record(
        event,
        user_id=consumer.user.pk,
        connection_id=consumer.auth.connection_id,
        remote_addr=_client_address(consumer.scope),
        connection_type=str(consumer.connection_type),
        **fields,
    )


def _client_address(scope: dict[str, Any]) -> str:
    """The client's address as tripsage.proxies resolved it ("unknown" if the server gave none)."""
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


async def _close_after_fault(send: Any) -> None:
    """SERVER_ERROR and 4011 (SERVER_FAULT), each sent whatever became of the other (before
    accept, daphne refuses the text and turns the close into a refused handshake)."""
    envelope = protocol.error_message(
        ErrorCode.SERVER_ERROR,
        "The server failed to open this connection; try again.",
        details={"retryable": True},
    )
    for message in (
        _text_frame(envelope),
        {"type": "websocket.close", "code": int(CloseCode.SERVER_FAULT)},
    ):
        try:
            await send(message)
        except Exception:
            logger.info("telling the client of the server's fault failed", exc_info=True)


class ReplayConnect:
    """The receive callable the consumer gets: `websocket.connect` first (the middleware took the
    server's), then the server's own receive, called, not awaited here: an idle consumer's
    pending receive is the server's alone, with no frame of this class's around it. Slotted: it
    lives as long as the socket."""

    __slots__ = ("_receive", "_replayed")

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._receive = receive
        self._replayed = False

    def __call__(self) -> Awaitable[dict[str, Any]]:
        if self._replayed:
            return self._receive()
        self._replayed = True
        return _connect_message()


async def _connect_message() -> dict[str, Any]:
    return {"type": "websocket.connect"}
