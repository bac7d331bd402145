"""The registry of this process's live sockets, by user and by connection id, and the one
subscription per process that closes them: a deactivation (or an operator's disconnect from the
admin) is published once to USERS_GROUP (events.broadcast), and each process closes the sockets
it holds for that user (or with those ids).

The message is delivered at most once, so the database decides too: each process re-checks its
sockets' users (deactivated or deleted), their trip memberships (a removal's `member.removed` and
`chat.member_removed` may be lost too) and the disconnects operators requested
(metrics.services.request_disconnect) every REALTIME_REVOCATION_CHECK_SECONDS, and at once when
its Redis subscription comes back after a loss (three queries for all of its sockets)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from collaboration import selectors
from events.aio import CATCH_UP, db, per_loop
from events.fanout import channel_layer, fanout
from events.groups import USERS_GROUP
from metrics import selectors as metrics_selectors

logger = logging.getLogger(__name__)

REGISTER_TIMEOUT = 10.0  # seconds a socket waits at most for its process to hear USERS_GROUP
# An operator's disconnect is stamped by the clock of the process that took the request.
REQUEST_CLOCK_MARGIN = timedelta(hours=1)


class Connections:
    def __init__(self) -> None:
        # user id -> the user's socket, or a set of them when there are several: most users
        # hold one socket, and an idle socket then costs no set (bench S3).
        self.by_user: dict[Any, Any] = {}
        self.by_id: dict[str, Any] = {}
        self.started = timezone.now()
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Event | None = None
        self.checker: asyncio.Task[None] | None = None
        self.check_now: asyncio.Event | None = None

    async def register(self, consumer: Any) -> None:
        """Count `consumer` as live here; returns once this process hears USERS_GROUP."""
        user_id = consumer.user.pk
        held = self.by_user.get(user_id)
        if held is None:
            self.by_user[user_id] = consumer
        elif isinstance(held, set):
            held.add(consumer)
        elif held is not consumer:
            self.by_user[user_id] = {held, consumer}
        self.by_id[consumer.connection_id] = consumer
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.ready = asyncio.Event()
            self.task = loop.create_task(self._listen())
            self.check_now = asyncio.Event()
            self.checker = loop.create_task(self._check_periodically())
            fanout(channel_layer()).on_resubscribed(self.check_now.set)
        assert self.ready is not None
        # Bounded: with Redis away the socket is told to retry (SERVER_ERROR, 4011); the
        # listener keeps trying, and the periodic re-check covers what it may miss.
        if not self.ready.is_set():
            await asyncio.wait_for(self.ready.wait(), REGISTER_TIMEOUT)

    def unregister(self, consumer: Any) -> None:
        self.by_id.pop(consumer.connection_id, None)
        user_id = consumer.user.pk
        held = self.by_user.get(user_id)
        if held is consumer:
            del self.by_user[user_id]
        elif isinstance(held, set):
            held.discard(consumer)
            if len(held) == 1:
                self.by_user[user_id] = held.pop()

    def of_user(self, user_id: Any) -> list[Any]:
        """The user's live sockets on this process."""
        held = self.by_user.get(user_id)
        if held is None:
            return []
        return list(held) if isinstance(held, set) else [held]

    def find(self, connection_id: str) -> Any | None:
        return self.by_id.get(connection_id)

    async def _listen(self) -> None:
        layer = channel_layer()
        channel = await layer.new_channel()
        while True:
            try:
                await layer.group_add(USERS_GROUP, channel)
                break
            except Exception as error:  # Redis away: keep trying
                logger.warning("joining %s failed (%s); retrying", USERS_GROUP, error)
                await asyncio.sleep(1)
        assert self.ready is not None
        self.ready.set()
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "realtime.connections_close":
                await self._close_connections(message.get("connection_ids") or [])
                continue
            for consumer in self.of_user(message.get("user_id")):
                try:
                    await consumer.realtime_user_revoked(message)
                except Exception:
                    logger.exception("closing a revoked user's socket failed")

    async def _check_periodically(self) -> None:
        assert self.check_now is not None
        while True:
            try:
                await asyncio.wait_for(
                    self.check_now.wait(), settings.REALTIME_REVOCATION_CHECK_SECONDS
                )
            except TimeoutError:
                pass
            self.check_now.clear()
            try:
                await self.recheck()
            except DatabaseError as error:  # the database away: the next check tries again
                logger.warning("re-checking revocations failed, the database is away: %s", error)
            except Exception:
                logger.exception("re-checking revoked users and disconnects failed")

    async def recheck(self) -> None:
        """Close the sockets whose user was deactivated or deleted, or that an operator asked
        to close, in case the message saying so never reached this process."""
        if self.by_user:
            revoked = await db(selectors.revoked_users, lane=CATCH_UP)(user_ids=list(self.by_user))
            for user_id in revoked:
                for consumer in self.of_user(user_id):
                    try:
                        await consumer.realtime_user_revoked({"user_id": user_id})
                    except Exception:
                        logger.exception("closing a revoked user's socket failed")
        await self._close_lost_memberships()
        if self.by_id:
            # Every request since this process started (a margin for other hosts' clocks): a few
            # rows; `_close_connections` takes those of this process's sockets.
            requested = await db(metrics_selectors.disconnects_requested, lane=CATCH_UP)(
                since=self.started - REQUEST_CLOCK_MARGIN
            )
            await self._close_connections(requested)

    async def _close_lost_memberships(self) -> None:
        """Close the trip and chat sockets whose user is no member of the trip any more, in case
        the removal's event never reached them (one query for all of this process's sockets)."""
        by_membership: dict[tuple[int, int], list[Any]] = {}
        for consumer in list(self.by_id.values()):
            trip_id = getattr(consumer, "trip_id", None)
            if trip_id is not None and not getattr(consumer, "closing", False):
                by_membership.setdefault((trip_id, consumer.user.pk), []).append(consumer)
        if not by_membership:
            return
        lost = await db(selectors.lost_memberships, lane=CATCH_UP)(pairs=list(by_membership))
        for pair in lost:
            for consumer in by_membership[pair]:
                try:
                    await consumer.membership_lost()
                except Exception:
                    logger.exception("closing a removed member's socket failed")

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
