"""Trip chat: `/ws/chat/<trip_id>/`. Persisted messages with `seq`, history, typing, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

import protocol
from collaboration import selectors
from collaboration.errors import NotFound
from collaboration.services import chat
from events.aio import CATCH_UP, db
from events.broadcast import broadcast_now
from events.fanout import Direct, fanout
from events.groups import chat_group
from metrics import instruments
from protocol import CloseCode, ConnectionType
from realtime.consumers.base import RealtimeConsumer
from realtime.streams import OrderedStream


class ChatConsumer(RealtimeConsumer):
    connection_type = ConnectionType.CHAT
    client_messages = (
        protocol.ChatSend,
        protocol.TypingStart,
        protocol.TypingStop,
        protocol.Resume,
    )
    instance_attributes = (
        "trip_id",
        "_history",
        "history_seq",
        "stream",
    )  # set on a socket beside RealtimeConsumer.instance_attributes (shared keys, bench S3)
    stream: OrderedStream  # the trip's chat messages, from this socket's history on
    stream_column = "chat_seq"  # the stream's head in the database (realtime.convergence)

    async def authorize(self) -> None:
        self.trip_id = int(self.scope["url_route"]["kwargs"]["trip_id"])
        # Join before reading the history: a message posted in between arrives through the
        # group and is sent or dropped by its `seq`, never lost.
        await self.join(chat_group(self.trip_id))
        try:
            self._history = await db(selectors.chat_page, lane=CATCH_UP)(
                trip_id=self.trip_id, user=self.user, limit=settings.CHAT_HISTORY_LIMIT
            )
        except NotFound:
            raise protocol.not_a_member(self.trip_id, request_id=self.auth.request_id) from None

    async def on_connected(self) -> None:
        history = self._history
        del self._history
        self.history_seq = history.seq
        self.stream = OrderedStream(self, history.seq, self._fill_gap)
        layer = fanout(self.channel_layer)
        layer.expect(chat_group(self.trip_id), history.seq)  # the layer's stream starts here
        await self.send_event(
            protocol.server_message(
                "chat.history",
                trip_id=self.trip_id,
                messages=history.messages,
                seq=history.seq,
                has_more=history.has_more,
            )
        )
        # From here the layer may write messages straight to the socket.
        layer.attach(
            self.channel_name,
            {"chat.event": self.stream.write_next, "chat.typing": self._direct_typing},
        )

    # -- client messages ----------------------------------------------------------------------

    async def on_chat_send(self, message: protocol.ChatSend) -> None:
        async with self.stream.fast_path_paused():  # the ack comes before the message's own event
            await self._chat_send(message)

    async def _chat_send(self, message: protocol.ChatSend) -> None:
        result = await db(chat.chat_post)(
            trip_id=self.trip_id, author=self.user, text=message.text, client_id=message.client_id
        )
        await self.send_event(
            protocol.server_message(
                "ack",
                request_id=message.id,
                status="duplicate" if result.duplicate else "posted",
                seq=result.message["seq"],
                message=result.message,
            )
        )

    async def on_typing_start(self, message: protocol.TypingStart) -> None:
        await self._typing(True)

    async def on_typing_stop(self, message: protocol.TypingStop) -> None:
        await self._typing(False)

    async def _typing(self, typing: bool) -> None:
        ttl = settings.CHAT_TYPING_TTL_SECONDS
        event = protocol.server_message(
            "typing.update",
            trip_id=self.trip_id,
            user={"id": self.user.pk, "username": self.user.get_username()},
            typing=typing,
            expires_at=(
                (datetime.now(UTC) + timedelta(seconds=ttl))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
                if typing
                else None
            ),
        )
        await broadcast_now(
            chat_group(self.trip_id),
            {
                "type": "chat.typing",
                "user_id": self.user.pk,
                "text": protocol.encode(event),
            },
        )

    async def on_resume(self, message: protocol.Resume) -> None:
        async with self.stream.fast_path_paused():  # live messages wait until the replay is out
            await self._resume(message)

    async def _resume(self, message: protocol.Resume) -> None:
        """The messages after `last_seq` up to this socket's history, in order, then
        `resume.complete`; messages after that this socket sends live. Too many missed:
        `resync.required` (the history already sent is the fresh start)."""
        missed = self.history_seq - message.last_seq
        if message.last_seq > self.history_seq or missed > settings.CHAT_RESUME_LIMIT:
            await self.send_event(
                protocol.server_message(
                    "resync.required",
                    request_id=message.id,
                    reason="unknown_seq" if message.last_seq > self.history_seq else "too_old",
                    last_seq=message.last_seq,
                    seq=self.history_seq,
                )
            )
            return
        replayed, after = 0, message.last_seq
        while after < self.history_seq:
            page = await db(selectors.chat_page, lane=CATCH_UP)(
                trip_id=self.trip_id, user=self.user, after=after, limit=200
            )
            if not page.messages:
                break
            for item in page.messages:
                if item["seq"] > self.history_seq:
                    break
                await self.send_event(
                    protocol.server_message("chat.message", seq=item["seq"], message=item)
                )
                replayed += 1
            after = page.messages[-1]["seq"]
        instruments.REPLAYS.labels(self.connection_type, "resume").inc(replayed)
        await self.send_event(
            protocol.server_message(
                "resume.complete",
                request_id=message.id,
                last_seq=message.last_seq,
                replayed=replayed,
                seq=self.stream.last_seq,
            )
        )

    # -- group events -------------------------------------------------------------------------

    def _direct_typing(self, event: dict[str, Any]) -> Direct:
        if self.closing or event.get("user_id") == self.user_id:
            return True
        return self.write_published(event)

    async def chat_event(self, event: dict[str, Any]) -> None:
        """The stream's queued path (realtime.streams)."""
        if self.closing:
            return  # refused at connect (the group was joined first), or closing
        await self.stream.send_queued(event)

    async def _fill_gap(self, up_to: int) -> bool:
        """What the socket missed up to `up_to`, from the trip's chat; False when the user is no
        longer a member (the socket is closed)."""
        after = self.stream.last_seq
        try:
            page = await db(selectors.chat_page)(
                trip_id=self.trip_id, user=self.user, after=after, limit=up_to - after
            )
        except NotFound:  # no longer a member
            await self.close_with(
                protocol.not_a_member(self.trip_id).envelope(), CloseCode.AUTHORIZATION_FAILED
            )
            return False
        await self.stream.send_missed(
            (
                protocol.server_message("chat.message", seq=item["seq"], message=item)
                for item in page.messages
            ),
            up_to,
        )
        return True

    async def chat_typing(self, event: dict[str, Any]) -> None:
        if event.get("user_id") != self.user_id and not self.closing:
            await self.send_published(event)

    async def chat_member_removed(self, event: dict[str, Any]) -> None:
        """A member removed from the trip stops reading its chat at once."""
        if event["user_id"] == self.user.pk:
            await self.close_with(
                protocol.not_a_member(self.trip_id, anymore=True).envelope(),
                CloseCode.AUTHORIZATION_FAILED,
            )
