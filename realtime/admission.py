"""Which client messages a socket processes: the user's message budget (realtime.throttling).

A message costs one from the budget the user's sockets of one connection type share on every
process. Over it the client gets RATE_LIMIT_EXCEEDED and the message is not processed; far over
it for a whole window, the socket is closed for flooding (4029). `rate_limit_status` says where
the budget stands: on connect, on request, and once as it falls under 20 %.

`auth.refresh` costs nothing from that budget; it has a bucket of its own per user
(realtime.throttling, REALTIME_REFRESH_*). Over it the refresh is refused the same way (details
`limit_type: "auth.refresh"`) before its token is looked at, and refused refreshes past the same
flood factor close the socket with 4029.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from django.conf import settings
from django.contrib.auth.models import User

import protocol
from events import security
from metrics import instruments
from protocol import CloseCode, ErrorCode, ProtocolError
from realtime.auth import record_for_socket
from realtime.flow import FlowControlledConsumer
from realtime.throttling import Decision, throttle


class RateLimitedConsumer(FlowControlledConsumer):
    """The rate-limit half of realtime.consumers.base.RealtimeConsumer."""

    user: User  # the authenticated user (realtime.auth.JWTAuthMiddleware)

    async def admit(self, request_id: str | None) -> bool:
        """Take one message from the user's budget for this connection type. False: refused,
        and the client was told (or the socket closed)."""
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
        await self.refuse(decision, request_id, "message")
        return False

    async def admit_refresh(self, request_id: str | None) -> bool:
        """Take one refresh from the user's auth.refresh bucket. False: refused (the client was
        told, or the socket closed for flooding) and the refresh is not to be processed."""
        decision = await throttle().refresh(self.user.pk)
        if decision.allowed:
            return True
        record_for_socket(self, security.Event.SOCKET_REFRESH_FAILED, reason="rate_limited")
        await self.refuse(decision, request_id, "auth.refresh")
        return False

    async def refuse(self, decision: Decision, request_id: str | None, limit_type: str) -> None:
        """RATE_LIMIT_EXCEEDED for a refused message or refresh; the socket closed with 4029 when
        this socket's refusals of that kind within one window pass REALTIME_FLOOD_FACTOR times
        the per-minute limit."""
        instruments.RATE_LIMIT_REFUSALS.labels(self.connection_type, limit_type).inc()
        io = self.io
        now = time.monotonic()
        refusals = io.refusals if limit_type == "message" else io.refresh_refusals
        if now - refusals[1] >= decision.rate.window:
            refusals = (0, now)
        refusals = (refusals[0] + 1, refusals[1])
        if limit_type == "message":
            io.refusals = refusals
        else:
            io.refresh_refusals = refusals
        details = decision.refusal_details(limit_type)
        if refusals[0] > settings.REALTIME_FLOOD_FACTOR * decision.rate.per_minute:
            await self.close_with(
                protocol.error_message(
                    ErrorCode.RATE_LIMIT_EXCEEDED,
                    "Closed for flooding: far more messages than the rate limit allows.",
                    details={**details, "reason": "flood", "refused": refusals[0]},
                    request_id=request_id,
                ),
                CloseCode.RATE_LIMITED,
            )
            return
        await self.send_error(
            ProtocolError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                "Message rate limit exceeded"
                if limit_type == "message"
                else "Token refresh rate limit exceeded",
                details=details,
                request_id=request_id,
            )
        )

    async def send_budget(
        self,
        request_id: str | None = None,
        decisions: Awaitable[tuple[Decision, Decision]] | None = None,
    ) -> None:
        """Where the user's message budget and refresh bucket stand now, without spending any
        of either (`decisions`: those looks, started earlier)."""
        if decisions is None:
            decisions = self._look(batched=False)
        budget, refresh = await decisions
        await self.send_rate_limit_status(budget, request_id, refresh)

    def look_at_budget(self) -> asyncio.Task[tuple[Decision, Decision]]:
        """The looks for the opening `rate_limit_status`, started now, in the pipeline of the
        other connects' checks, to overlap the connection type's own reads."""
        return asyncio.get_running_loop().create_task(self._look(batched=True))

    async def _look(self, *, batched: bool) -> tuple[Decision, Decision]:
        limiter = throttle()
        user_id = self.user.pk
        budget, refresh = await limiter.look(
            [
                limiter.message_bucket(user_id, self.connection_type),
                limiter.refresh_bucket(user_id),
            ],
            batched=batched,
        )
        return budget, refresh

    async def send_rate_limit_status(
        self, decision: Decision, request_id: str | None = None, refresh: Decision | None = None
    ) -> None:
        if refresh is None:
            refresh = await throttle().refresh(self.user.pk, 0)
        await self.send_event(
            protocol.server_message(
                "rate_limit_status",
                request_id=request_id,
                **decision.status_fields(),
                auth_refresh=refresh.bucket_fields(),
            )
        )

    async def on_rate_limit_status(self, message: protocol.RateLimitStatus) -> None:
        await self.send_budget(message.id)
