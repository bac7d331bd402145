"""Notifications: `/ws/notifications/`, one per user. Unread ones on connect, new ones live,
read state kept in step across the user's sockets."""

from __future__ import annotations

from typing import Any

from django.conf import settings

import protocol
from collaboration import selectors
from collaboration.services import notifications
from events.aio import CATCH_UP, db
from events.groups import user_notifications_group
from protocol import ConnectionType
from realtime.consumers.base import RealtimeConsumer


def _unread(user: Any) -> tuple[list[dict[str, Any]], int]:
    page, _ = selectors.notifications_for(
        user=user, unread_only=True, limit=settings.NOTIFICATIONS_ON_CONNECT
    )
    return page, selectors.unread_count(user=user)


class NotificationConsumer(RealtimeConsumer):
    connection_type = ConnectionType.NOTIFICATIONS
    client_messages = (protocol.NotificationRead, protocol.NotificationReadAll)

    async def on_connected(self) -> None:
        # Join first: a notification created meanwhile arrives live (and may also be in the
        # list; clients key notifications by id).
        await self.join(user_notifications_group(self.user.pk))
        unread, count = await db(_unread, lane=CATCH_UP)(self.user)
        await self.send_event(
            protocol.server_message(
                "notifications.unread", notifications=unread, unread_count=count
            )
        )

    async def on_notification_read(self, message: protocol.NotificationRead) -> None:
        await self._read(message.id, message.ids)

    async def on_notification_read_all(self, message: protocol.NotificationReadAll) -> None:
        await self._read(message.id, None)

    async def _read(self, request_id: str | None, ids: list[int] | None) -> None:
        changed, count = await db(notifications.notification_read)(user=self.user, ids=ids)
        # Every socket of the user (this one too) also gets `notification.read` when any changed.
        await self.send_event(
            protocol.server_message("ack", request_id=request_id, ids=changed, unread_count=count)
        )

    async def notification_event(self, event: dict[str, Any]) -> None:
        await self.send_published(event)
