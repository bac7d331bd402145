"""Admission control for WebSocket connects: a process refuses new sockets, early and cheaply,
while too many of its own are still opening, instead of queueing them until everyone times out.

A socket is *opening* from its `websocket.connect` until its consumer has sent
`connection.established` (`socket_opened`, called by realtime.consumers.base), or until it ended,
whichever comes first: the phase in which it costs the process work (the token's check, the
connection lease, the membership and the snapshot's reads) and gives the client nothing yet. While
REALTIME_MAX_OPENING_SOCKETS are opening, the next socket is accepted, told `SERVER_ERROR` with
`details {"reason": "overloaded", "retryable": true, "retry_after": <seconds>}` and closed with
4013 (CloseCode.TRY_AGAIN_LATER). That refusal reads no database and no Redis: a process that
cannot keep up spends almost nothing on the excess, and its clients come back spread out
(retry_after is jittered here, and again by the browser client).

Why after accept and not an HTTP 503, and why 4013: docs/decisions.md ("Issue 16: admission
control"). The count is this process's own, in one plain integer: one event loop, no lock.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings

import protocol
from metrics import instruments
from protocol import CloseCode, ErrorCode
from realtime.flow import SEND_ON_CLOSED

logger = logging.getLogger(__name__)

# The scope key of an admitted socket's `Opening`, which `socket_opened` calls.
SCOPE_KEY = "connect_gate.opening"
# A refusal is logged at most this often (with the number refused since): a storm refuses
# thousands, and each one is counted in tripsage_rate_limit_refusals_total anyway.
LOG_INTERVAL_SECONDS = 10.0


class Opening:
    """An admitted socket's hold on its gate: released once, by the first of `socket_opened`
    and the socket's end. Slotted and small: the scope keeps it for the socket's life."""

    __slots__ = ("_gate",)

    def __init__(self, gate: ConnectGate) -> None:
        self._gate: ConnectGate | None = gate

    def __call__(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()


def _give_up(place: asyncio.Future[bool]) -> None:
    if not place.done():
        place.set_result(False)


def socket_opened(scope: Mapping[str, object]) -> None:
    """The consumer has sent `connection.established`: this socket no longer counts as opening.
    A scope that came through no gate (Channels' test communicator) has nothing to release."""
    opening = scope.get(SCOPE_KEY)
    if isinstance(opening, Opening):
        opening()


class ConnectGate:
    """ASGI middleware for the "websocket" branch, outside realtime.auth.JWTAuthMiddleware.

    `limit` (REALTIME_MAX_OPENING_SOCKETS; 0: never refuse), `wait_seconds`
    (REALTIME_OPENING_WAIT_SECONDS; 0: refuse at once), `max_waiting`
    (REALTIME_MAX_WAITING_SOCKETS) and `retry_seconds` (REALTIME_OVERLOAD_RETRY_SECONDS) default
    to the settings; `random` and `clock` are injectable for tests. The send callable is passed
    through untouched: realtime.direct recognises daphne's own.
    """

    def __init__(
        self,
        app: Any,
        *,
        limit: int | None = None,
        wait_seconds: float | None = None,
        max_waiting: int | None = None,
        retry_seconds: float | None = None,
        random: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limit = settings.REALTIME_MAX_OPENING_SOCKETS if limit is None else limit
        self.retry_seconds = (
            settings.REALTIME_OVERLOAD_RETRY_SECONDS if retry_seconds is None else retry_seconds
        )
        self.wait_seconds = (
            settings.REALTIME_OPENING_WAIT_SECONDS if wait_seconds is None else wait_seconds
        )
        self.max_waiting = (
            settings.REALTIME_MAX_WAITING_SOCKETS if max_waiting is None else max_waiting
        )
        self.opening = 0  # sockets of this process between connect and established
        # Connects waiting for a place, first come first served; a place that frees goes to the
        # first of them still waiting (its future's result True), without passing through zero.
        self._waiting: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.waiting = 0  # of those, the ones still waiting
        self._random = random
        self._clock = clock
        self._refused_unlogged = 0
        self._logged_at: float | None = None
        # Read at scrape time: nothing per connect on the instrument's lock.
        instruments.CONNECTIONS_OPENING.set_function(lambda: self.opening)
        instruments.CONNECTIONS_WAITING.set_function(lambda: self.waiting)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if 0 < self.limit <= self.opening:
            if not await self._wait_for_place():
                return await self._refuse(receive, send)
        else:
            self.opening += 1
        opening = Opening(self)
        try:
            # Awaited for the `finally` below, so this frame lives as long as the socket: it
            # keeps the application's coroutine and the Opening, not the scope or the callables.
            app = self.app({**scope, SCOPE_KEY: opening}, receive, send)
            del scope, receive, send
            return await app
        finally:
            opening()  # ended before it was established (refused, dropped, failed): no leak

    async def _wait_for_place(self) -> bool:
        """Wait, at most `wait_seconds`, for a place among the opening sockets; True when one
        was handed over (counted in `opening` already), False to refuse. A connect waits before
        its handshake is answered and costs nothing meanwhile but this future; a refused one
        would come back, costing another handshake (bench S7)."""
        if self.wait_seconds <= 0 or self.waiting >= self.max_waiting:
            return False
        loop = asyncio.get_running_loop()
        place: asyncio.Future[bool] = loop.create_future()
        if len(self._waiting) > 2 * self.max_waiting + 64:  # those that gave up, not yet passed
            self._waiting = collections.deque(f for f in self._waiting if not f.done())
        self._waiting.append(place)
        self.waiting += 1
        timer = loop.call_later(self.wait_seconds, _give_up, place)
        try:
            return await place
        except asyncio.CancelledError:
            # The socket ended while waiting: a place handed over meanwhile goes on.
            if place.done() and not place.cancelled() and place.result():
                self.release()
            raise
        finally:
            timer.cancel()
            self.waiting -= 1

    def release(self) -> None:
        """A place frees: to the first connect still waiting, or back to the count."""
        waiting = self._waiting
        while waiting:
            place = waiting.popleft()
            if not place.done():
                place.set_result(True)
                return
        self.opening -= 1

    def retry_after(self) -> float:
        """Seconds the client should wait: between retry_seconds and twice that, so that clients
        that honour it exactly (not only ours, which jitters it again) do not return together."""
        return round(self.retry_seconds * (1 + self._random()), 3)

    async def _refuse(self, receive: Any, send: Any) -> None:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        instruments.RATE_LIMIT_REFUSALS.labels("any", "overloaded").inc()
        self._log_refusal()
        envelope = protocol.error_message(
            ErrorCode.SERVER_ERROR,
            "The server is busy opening other connections; try again shortly.",
            details={"reason": "overloaded", "retryable": True, "retry_after": self.retry_after()},
        )
        try:
            # After accept: a close before it would reach the client as a bare HTTP 403.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": protocol.encode(envelope)})
            await send({"type": "websocket.close", "code": int(CloseCode.TRY_AGAIN_LATER)})
        except SEND_ON_CLOSED:
            pass  # the client left first: nothing to tell it

    def _log_refusal(self) -> None:
        self._refused_unlogged += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL_SECONDS:
            return
        logger.warning(
            "refused %d websocket connect(s) since the last report: %d sockets opening "
            "(REALTIME_MAX_OPENING_SOCKETS=%d)",
            self._refused_unlogged,
            self.opening,
            self.limit,
        )
        self._refused_unlogged = 0
        self._logged_at = now
