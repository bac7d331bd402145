"""The registry of this process's live sockets, by user and by connection id, and the one
subscription per process that closes them: a deactivation (or an operator's disconnect from the
admin) is published once to USERS_GROUP (events.broadcast), and each process closes the sockets
it holds for that user (or with those ids)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from events.aio import per_loop
from events.fanout import channel_layer
from events.groups import USERS_GROUP

logger = logging.getLogger(__name__)


class Connections:
    def __init__(self) -> None:
        self.by_user: dict[Any, set[Any]] = defaultdict(set)
        self.by_id: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Event | None = None

    async def register(self, consumer: Any) -> None:
        """Count `consumer` as live here; returns once this process hears USERS_GROUP."""
        self.by_user[consumer.user.pk].add(consumer)
        self.by_id[consumer.connection_id] = consumer
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.ready = asyncio.Event()
            self.task = loop.create_task(self._listen())
        assert self.ready is not None
        await self.ready.wait()

    def unregister(self, consumer: Any) -> None:
        self.by_id.pop(consumer.connection_id, None)
        sockets = self.by_user.get(consumer.user.pk)
        if sockets is not None:
            sockets.discard(consumer)
            if not sockets:
                del self.by_user[consumer.user.pk]

    def find(self, connection_id: str) -> Any | None:
        return self.by_id.get(connection_id)

    async def _listen(self) -> None:
        layer = channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(USERS_GROUP, channel)
        assert self.ready is not None
        self.ready.set()
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "realtime.connections_close":
                await self._close_connections(message.get("connection_ids") or [])
                continue
            for consumer in list(self.by_user.get(message.get("user_id"), ())):
                try:
                    await consumer.realtime_user_revoked(message)
                except Exception:
                    logger.exception("closing a revoked user's socket failed")

    async def _close_connections(self, connection_ids: list[str]) -> None:
        """An operator's disconnect: the sockets with these ids that this process holds."""
        for connection_id in connection_ids:
            consumer = self.find(connection_id)
            if consumer is None:
                continue
            try:
                await consumer.close_by_operator()
            except Exception:
                logger.exception("closing socket %s for an operator failed", connection_id)


connections = per_loop(Connections)
