"""Which client messages a socket processes: the user's message budget (realtime.throttling).

A message costs one from the budget the user's sockets of one connection type share on every
process. Over it the client gets RATE_LIMIT_EXCEEDED and the message is not processed; far over
it for a whole window, the socket is closed for flooding (4029). `rate_limit_status` says where
the budget stands: on connect, on request, and once as it falls under 20 %.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from django.conf import settings
from django.contrib.auth.models import User

import protocol
from metrics import instruments
from protocol import CloseCode, ErrorCode, ProtocolError
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

    async def send_budget(
        self, request_id: str | None = None, decision: Awaitable[Decision] | None = None
    ) -> None:
        """Where the user's message budget stands now, without spending any of it (`decision`:
        that look, started earlier)."""
        if decision is None:
            decision = throttle().message(self.user.pk, self.connection_type, 0)
        await self.send_rate_limit_status(await decision, request_id)

    def look_at_budget(self) -> asyncio.Task[Decision]:
        """The budget's look for the opening `rate_limit_status`, started now, in the pipeline
        of the other connects' checks, to overlap the connection type's own reads."""
        return asyncio.get_running_loop().create_task(
            throttle().message(self.user.pk, self.connection_type, 0, batched=True)
        )

    async def send_rate_limit_status(
        self, decision: Decision, request_id: str | None = None
    ) -> None:
        await self.send_event(
            protocol.server_message(
                "rate_limit_status", request_id=request_id, **decision.status_fields()
            )
        )

    async def on_rate_limit_status(self, message: protocol.RateLimitStatus) -> None:
        await self.send_budget(message.id)
