"""Trip collaboration: `/ws/trips/<trip_id>/`. Live edits, conflicts, presence, replay."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from collaboration import selectors, services
from collaboration.models import TripMember
from realtime import protocol
from realtime.broadcast import trip_group
from realtime.consumers.base import RealtimeConsumer
from realtime.presence import tracker
from realtime.protocol import CloseCode, ConnectionType, ErrorCode, ProtocolError


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

    # -- connect and disconnect ---------------------------------------------------------------

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
        # Join before reading the snapshot: an event committed in between arrives through the
        # group and is dropped or sent by its `seq`, never lost.
        await self.join(trip_group(self.trip_id))
        snapshot = await database_sync_to_async(selectors.trip_snapshot)(
            trip_id=self.trip_id, user=self.user
        )
        self.last_seq = self.snapshot_seq = snapshot["seq"]
        state = await tracker().join(self.trip_id, self.connection_id, self.user)
        self.joined_presence = True
        # The snapshot carries this state: its own broadcast would only repeat it.
        self._last_versions = {"presence.update": state.version, "editing.update": state.version}
        await self.send_event(
            protocol.server_message(
                "trip.snapshot",
                **snapshot,
                collaborators=state.collaborators,
                collaborator_count=len(state.collaborators),
                editing=state.editing,
                presence_version=state.version,
            )
        )

    async def on_disconnected(self, code: int) -> None:
        if getattr(self, "joined_presence", False):
            await tracker().leave(self.trip_id, self.connection_id, self.user)

    # -- client messages ----------------------------------------------------------------------

    async def on_trip_update(self, message: protocol.TripUpdate) -> None:
        result = await database_sync_to_async(services.trip_update)(
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
        value_given = "value" in message.model_fields_set
        if (message.choice == "value") != value_given:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE_FORMAT,
                "`value` is required with choice 'value' and not allowed otherwise.",
                details={"reason": "invalid_fields", "field": "value"},
                request_id=message.id,
            )
        result = await database_sync_to_async(services.conflict_resolve)(
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
        self._require_editor(message)
        await tracker().editing_start(self.trip_id, self.connection_id, self.user, message.field)

    async def on_editing_stop(self, message: protocol.EditingStop) -> None:
        await tracker().editing_stop(self.trip_id, self.connection_id, self.user, message.field)

    async def on_resume(self, message: protocol.Resume) -> None:
        """Send exactly what the client missed before this socket's snapshot; what came after
        the snapshot this socket has already sent live."""
        page = await database_sync_to_async(selectors.events_after)(
            trip_id=self.trip_id, after=message.last_seq
        )
        if not page.complete:
            snapshot = await database_sync_to_async(selectors.trip_snapshot)(
                trip_id=self.trip_id, user=self.user
            )
            await self._send_missing_up_to(snapshot["seq"])
            state = await tracker().current(self.trip_id)
            await self.send_event(
                protocol.server_message(
                    "resync.required",
                    request_id=message.id,
                    reason="too_old" if message.last_seq < snapshot["seq"] else "unknown_seq",
                    last_seq=message.last_seq,
                    snapshot={
                        **snapshot,
                        "collaborators": state.collaborators,
                        "collaborator_count": len(state.collaborators),
                        "editing": state.editing,
                    },
                )
            )
            return
        replayed = 0
        for event in page.messages:
            if event["seq"] > self.snapshot_seq:
                break
            await self.send_event(event)
            replayed += 1
        await self.send_event(
            protocol.server_message(
                "resume.complete",
                request_id=message.id,
                last_seq=message.last_seq,
                replayed=replayed,
                seq=self.last_seq,
            )
        )

    async def on_echo(self, message: protocol.Echo) -> None:
        await self.send_event(
            protocol.server_message("echo", request_id=message.id, data=message.data)
        )

    def _require_editor(self, message: protocol.ClientMessage) -> None:
        if self.role not in (TripMember.Role.OWNER, TripMember.Role.EDITOR):
            raise ProtocolError(
                ErrorCode.AUTHORIZATION_FAILED,
                "Viewers cannot edit this trip.",
                details={"role": self.role},
                request_id=message.id,
            )

    # -- group events -------------------------------------------------------------------------

    async def trip_event(self, event: dict[str, Any]) -> None:
        """A logged event, in `seq` order: duplicates are dropped and a gap (the channel layer
        delivers at most once) is filled from the log before the event is sent."""
        message = event["message"]
        seq = message["seq"]
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._send_missing_up_to(seq - 1)
        await self.send_event(message)
        self.last_seq = seq
        await self._apply_membership(message)

    async def _send_missing_up_to(self, seq: int) -> None:
        page = await database_sync_to_async(selectors.events_after)(
            trip_id=self.trip_id, after=self.last_seq
        )
        for missed in page.messages:
            if missed["seq"] > seq:
                break
            await self.send_event(missed)
            self.last_seq = missed["seq"]
            await self._apply_membership(missed)

    async def _apply_membership(self, message: dict[str, Any]) -> None:
        if message["type"] not in ("member.updated", "member.removed"):
            return
        if message["user"]["id"] != self.user.pk:
            return
        if message["type"] == "member.updated":
            self.role = message["role"]
            return
        await self.close_with(
            protocol.error_message(
                ErrorCode.AUTHORIZATION_FAILED,
                "You are no longer a member of this trip.",
                details={"trip_id": self.trip_id},
            ),
            CloseCode.AUTHORIZATION_FAILED,
        )

    async def trip_presence(self, event: dict[str, Any]) -> None:
        """Presence and editing states are whole states with a version: an older one than the
        last sent is dropped."""
        message = event["message"]
        if message["version"] <= self._last_versions.get(message["type"], 0):
            return
        self._last_versions[message["type"]] = message["version"]
        await self.send_event(message)
