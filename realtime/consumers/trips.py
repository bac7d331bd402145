"""Trip collaboration: `/ws/trips/<trip_id>/`. Members only; join-and-echo for now."""

from __future__ import annotations

from channels.db import database_sync_to_async

from collaboration import selectors
from realtime import protocol
from realtime.broadcast import trip_group
from realtime.consumers.base import RealtimeConsumer
from realtime.protocol import ConnectionType, ErrorCode, ProtocolError


class TripConsumer(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION
    client_messages = (protocol.Echo,)

    async def authorize(self) -> None:
        self.trip_id = int(self.scope["url_route"]["kwargs"]["trip_id"])
        self.role = await database_sync_to_async(selectors.trip_role)(
            trip_id=self.trip_id, user_id=self.user.pk
        )
        if self.role is None:
            # The same answer for "no such trip" and "not a member": ids are not probed.
            raise ProtocolError(
                ErrorCode.AUTHORIZATION_FAILED,
                "You are not a member of this trip.",
                details={"trip_id": self.trip_id},
                request_id=self.auth.request_id,
            )

    async def on_connected(self) -> None:
        await self.join(trip_group(self.trip_id))

    async def on_echo(self, message: protocol.Echo) -> None:
        await self.send_event(
            protocol.server_message("echo", request_id=message.id, data=message.data)
        )
