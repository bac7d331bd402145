"""Trip collaboration: `/ws/trips/<trip_id>/`. Live edits, conflicts, presence, replay."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, Literal

from django.contrib.auth.models import User

import protocol
from collaboration import selectors
from collaboration.errors import NotFound
from collaboration.services import conflicts, trips
from events.aio import CATCH_UP, db
from events.batch import Batcher
from events.fanout import Direct, fanout
from events.groups import trip_group
from metrics import instruments
from protocol import ConnectionType, ErrorCode, ProtocolError
from realtime.consumers.base import RealtimeConsumer
from realtime.presence import tracker
from realtime.streams import OrderedStream

PRESENCE_KINDS = ("presence.update", "editing.update")


async def _snapshots_for(keys: list[tuple[int, User]]) -> dict[tuple[int, User], Any]:
    found = await db(selectors.trips_connect, lane=CATCH_UP)(keys=keys)
    return {(trip_id, user): found[(trip_id, user.pk)] for trip_id, user in keys}


# The snapshots of sockets opening at the same time, read together (events.batch).
_connect_snapshots: Batcher[tuple[int, User], dict[str, Any] | None] = Batcher(_snapshots_for)


class TripConsumer(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION
    client_messages = (
        protocol.TripUpdate,
        protocol.EditingStart,
        protocol.EditingStop,
        protocol.ConflictResolve,
        protocol.Resume,
        protocol.Echo,
    )
    instance_attributes = (
        "trip_id",
        "_live",
        "_snapshot",
        "snapshot_seq",
        "stream",
        "joined_presence",
        "_shown",
    )  # set on a socket beside RealtimeConsumer.instance_attributes (shared keys, bench S3)
    stream: OrderedStream  # the trip's events, from this socket's snapshot on
    stream_column = "seq"  # the stream's head in the database (realtime.convergence)

    # -- connect and disconnect ---------------------------------------------------------------

    async def authorize(self) -> None:
        self.trip_id = int(self.scope["url_route"]["kwargs"]["trip_id"])
        self._live = False
        # Join before reading the snapshot: an event committed in between arrives through the
        # group and is dropped or sent by its `seq`, never lost.
        await self.join(trip_group(self.trip_id))
        snapshot = await _connect_snapshots((self.trip_id, self.user))
        if snapshot is None:
            # The same answer for "no such trip" and "not a member": ids are not probed.
            raise protocol.not_a_member(self.trip_id, request_id=self.auth.request_id)
        self._snapshot = snapshot
        # The layer's stream of this trip starts here if it had none.
        fanout(self.channel_layer).expect(trip_group(self.trip_id), snapshot["seq"])

    async def on_connected(self) -> None:
        snapshot = self._snapshot
        del self._snapshot
        self.snapshot_seq = snapshot["seq"]
        self.stream = OrderedStream(self, snapshot["seq"], self._fill_gap)
        # Before the join: a join that fails halfway (Redis away) is still left on release.
        self.joined_presence = True
        state = await tracker().join(self.trip_id, self.connection_id, self.user)
        # The snapshot carries this state: its own broadcast would only repeat it.
        # kind -> (version, digest) of the presence state this socket last showed.
        self._shown = {kind: (state.version, state.digest(kind)) for kind in PRESENCE_KINDS}
        await self.send_event(
            protocol.server_message(
                "trip.snapshot",
                **snapshot,
                **state.presence_fields(),
                editing=state.editing,
                presence_version=state.version,
            )
        )
        self._go_live()

    def _go_live(self) -> None:
        """From here on the channel layer may write this trip's events straight to the socket,
        in the layer's listener, without waking this consumer (realtime.layers)."""
        self._live = True
        fanout(self.channel_layer).attach(
            self.channel_name,
            {"trip.event": self._direct_event, "trip.presence": self._direct_presence},
        )

    async def on_disconnected(self, code: int) -> None:
        self._live = False
        if getattr(self, "joined_presence", False):
            await tracker().leave(self.trip_id, self.connection_id, self.user)

    # -- client messages ----------------------------------------------------------------------

    async def on_trip_update(self, message: protocol.TripUpdate) -> None:
        async with self.stream.fast_path_paused():
            await self._trip_update(message)

    async def _trip_update(self, message: protocol.TripUpdate) -> None:
        result = await db(trips.trip_update)(
            trip_id=self.trip_id,
            actor=self.user,
            update_id=message.update_id,
            field=message.field,
            value=message.value,
            base_version=message.base_version,
        )
        await self.send_event(
            protocol.server_message("ack", request_id=message.id, **result.as_dict())
        )

    async def on_conflict_resolve(self, message: protocol.ConflictResolve) -> None:
        async with self.stream.fast_path_paused():
            await self._conflict_resolve(message)

    async def _conflict_resolve(self, message: protocol.ConflictResolve) -> None:
        value_given = "value" in message.model_fields_set
        if (message.choice == "value") != value_given:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE_FORMAT,
                "`value` is required with choice 'value' and not allowed otherwise.",
                details={"reason": "invalid_fields", "field": "value"},
                request_id=message.id,
            )
        result = await db(conflicts.conflict_resolve)(
            trip_id=self.trip_id,
            conflict_id=message.conflict_id,
            actor=self.user,
            choice=message.choice,
            value=message.value,
            update_id=message.update_id,
        )
        await self.send_event(
            protocol.server_message("ack", request_id=message.id, **result.as_dict())
        )

    async def on_editing_start(self, message: protocol.EditingStart) -> None:
        # The database's role, not one this socket heard: a demotion's `member.updated` may be on
        # its way, or lost (the channel layer delivers at most once).
        await db(selectors.role_to_edit)(trip_id=self.trip_id, user_id=self.user_id)
        await tracker().editing_start(self.trip_id, self.connection_id, self.user, message.field)

    async def on_editing_stop(self, message: protocol.EditingStop) -> None:
        await tracker().editing_stop(self.trip_id, self.connection_id, self.user, message.field)

    async def on_resume(self, message: protocol.Resume) -> None:
        """Send exactly what the client missed before this socket's snapshot; what came after
        the snapshot this socket has already sent live. Live events wait (queued) meanwhile, so
        the replay is never interleaved with them."""
        async with self.stream.fast_path_paused():
            await self._resume(message)

    async def _resume(self, message: protocol.Resume) -> None:
        if message.last_seq <= self.snapshot_seq:
            # What this process sent out lately, already encoded: after a reconnect storm the
            # members coming back ask for the same few seconds of events (bench S7).
            recent = fanout(self.channel_layer).recent(
                trip_group(self.trip_id), message.last_seq, self.snapshot_seq
            )
            if recent is not None:
                for event in recent:
                    sent = self.write_published(event)
                    if sent is not True:
                        await sent
                instruments.REPLAYS.labels(self.connection_type, "resume_recent").inc(len(recent))
                await self._resume_complete(message, len(recent))
                return
        page = await db(selectors.events_after, lane=CATCH_UP)(
            trip_id=self.trip_id, after=message.last_seq
        )
        if not page.complete:
            snapshot = await db(selectors.trip_snapshot, lane=CATCH_UP)(
                trip_id=self.trip_id, user=self.user
            )
            await self._fill_gap(snapshot["seq"])
            state = await tracker().current(self.trip_id)
            await self.send_event(
                protocol.server_message(
                    "resync.required",
                    request_id=message.id,
                    reason="too_old" if message.last_seq < snapshot["seq"] else "unknown_seq",
                    last_seq=message.last_seq,
                    snapshot={**snapshot, **state.presence_fields(), "editing": state.editing},
                )
            )
            return
        replayed = 0
        for event in page.messages:
            if event["seq"] > self.snapshot_seq:
                break
            await self.send_event(event)
            replayed += 1
        instruments.REPLAYS.labels(self.connection_type, "resume").inc(replayed)
        await self._resume_complete(message, replayed)

    async def _resume_complete(self, message: protocol.Resume, replayed: int) -> None:
        await self.send_event(
            protocol.server_message(
                "resume.complete",
                request_id=message.id,
                last_seq=message.last_seq,
                replayed=replayed,
                seq=self.stream.last_seq,
            )
        )

    async def on_echo(self, message: protocol.Echo) -> None:
        await self.send_event(
            protocol.server_message("echo", request_id=message.id, data=message.data)
        )

    # -- group events -------------------------------------------------------------------------

    def _direct_event(self, event: dict[str, Any]) -> Direct:
        """The stream's fast path, once live; a membership change of this socket's own user goes
        to the queue, where `trip_event` acts on it."""
        if not self._live or event.get("user_id") == self.user_id:
            return False
        return self.stream.write_next(event)

    def _direct_presence(self, event: dict[str, Any]) -> Direct:
        if not self._live or self.stream.paused or self.closing:
            return False
        return self._presence_write(event)

    async def trip_event(self, event: dict[str, Any]) -> None:
        """The stream's queued path (realtime.streams); then a change of this socket's own
        membership takes effect."""
        if self.closing:
            return  # refused at connect (the group was joined first), or closing
        if await self.stream.send_queued(event) and event.get("user_id") == self.user_id:
            await self._apply_membership(json.loads(event["text"]))

    async def _fill_gap(self, up_to: int) -> bool:
        """What the socket missed up to `up_to`, from the trip's event log; if the log no longer
        keeps it, the database's state as `resync.required`, as for a `resume` from that far."""
        page = await db(selectors.events_after)(trip_id=self.trip_id, after=self.stream.last_seq)
        if not page.complete:
            await self._resync(reason="too_old", last_seq=self.stream.last_seq)
            return True
        await self.stream.send_missed(page.messages, up_to, then=self._apply_membership)
        return True

    async def _resync(self, *, reason: str, last_seq: int, request_id: str | None = None) -> None:
        """A fresh snapshot, and the stream goes on from its `seq` (the events before it are in
        it); a user who is no member any more is closed, as for their `member.removed`."""
        try:
            snapshot = await db(selectors.trip_snapshot)(trip_id=self.trip_id, user=self.user)
        except NotFound:
            await self.membership_lost()
            return
        state = await tracker().current(self.trip_id)
        self.stream.last_seq = max(self.stream.last_seq, snapshot["seq"])
        await self.send_event(
            protocol.server_message(
                "resync.required",
                request_id=request_id,
                reason=reason,
                last_seq=last_seq,
                snapshot={**snapshot, **state.presence_fields(), "editing": state.editing},
            )
        )

    async def _apply_membership(self, message: dict[str, Any]) -> None:
        if message["type"] not in ("member.updated", "member.removed"):
            return
        if message["user"]["id"] != self.user.pk:
            return
        if message["type"] == "member.removed":
            await self.membership_lost()

    async def trip_presence(self, event: dict[str, Any]) -> None:
        if self.closing:
            return
        write = self._presence_write(event)
        if write is not True:
            await write

    def _presence_write(self, event: dict[str, Any]) -> Literal[True] | Awaitable[None]:
        """Presence and editing states are whole states with a version: an older one than the
        last sent is dropped."""
        kind = event["kind"]
        version, digest = self._shown[kind]
        if event["version"] <= version:
            return True
        self._shown[kind] = (event["version"], event["digest"])
        if event["digest"] == digest:
            return True  # nothing this socket would see differently
        return self.write_published(event)
