"""An open socket's token: refreshed by the client (`auth.refresh`), or closed once it expires.

The socket opens under the token the client authenticated with (realtime.auth.JWTAuthMiddleware).
Before it expires the client sends a fresh one for the same user; without one, the socket is
closed (4001) REALTIME_TOKEN_GRACE_SECONDS after the expiry.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User

import protocol
from events import security
from metrics import instruments
from protocol import AuthFailureReason, CloseCode, ErrorCode
from realtime.auth import record_for_socket
from realtime.flow import FlowControlledConsumer
from realtime.timers import ticker
from realtime.tokens import AuthFailure, authenticate_token_async


class TokenRefreshConsumer(FlowControlledConsumer):
    """The token half of realtime.consumers.base.RealtimeConsumer."""

    user: User  # the authenticated user (realtime.auth.JWTAuthMiddleware)
    token_expires_at: datetime

    async def on_auth_refresh(self, message: protocol.AuthRefresh) -> None:
        try:
            user, verified = await authenticate_token_async(message.token)
        except AuthFailure as failure:
            record_for_socket(self, security.Event.SOCKET_REFRESH_FAILED, reason=failure.reason)
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
            mismatch = AuthFailure(
                AuthFailureReason.USER_MISMATCH, "A refreshed token must belong to the same user."
            )
            record_for_socket(
                self, security.Event.SOCKET_REFRESH_FAILED, reason=AuthFailureReason.USER_MISMATCH
            )
            await self.close_with(mismatch.envelope(message.id), CloseCode.AUTHENTICATION_FAILED)
            return
        self.user = user
        self.token_expires_at = verified.expires_at
        record_for_socket(self, security.Event.SOCKET_REFRESHED)
        ticker().reschedule(self)  # a token may expire sooner than the one before it
        await self.send_event(
            protocol.server_message(
                "auth.refreshed",
                request_id=message.id,
                token_expires_at=protocol.iso(verified.expires_at),
            )
        )

    def token_due(self, now: float, wall: float) -> float:
        """When the token's grace ends, on the `now` clock (`wall` is the same moment)."""
        expiry = self.token_expires_at.timestamp() + settings.REALTIME_TOKEN_GRACE_SECONDS
        return now + (expiry - wall)

    async def close_if_token_expired(self, wall: float) -> bool:
        """Each tick (realtime.timers): True when the token expired without a refresh (grace
        included) and the socket was closed for it."""
        if wall < self.token_expires_at.timestamp() + settings.REALTIME_TOKEN_GRACE_SECONDS:
            return False
        failure = AuthFailure(
            AuthFailureReason.EXPIRED,
            "Invalid or expired token",
            expires_at=self.token_expires_at,
        )
        await self.close_with(failure.envelope(), CloseCode.AUTHENTICATION_FAILED)
        return True
