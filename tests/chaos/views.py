"""What a client shows of a trip, for the fault tests: a view built from the snapshot and every
event after it, checked for order, and compared with the database."""

from __future__ import annotations

import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async

from collaboration import fields
from collaboration.models import Trip, TripEvent
from tests import factories
from tests.wsclient import collaborators, connect, editing, recv_json, send_json

token_for = sync_to_async(factories.access_token)


class TripView:
    """What one client shows of a trip: the snapshot, then every trip.updated applied in order,
    and the latest presence it was sent."""

    def __init__(self, ws: Any) -> None:
        snapshot = ws.snapshot
        self.ws = ws
        self.fields = dict(snapshot["trip"]["fields"])
        self.seq = snapshot["seq"]
        self.version = snapshot["trip"]["version"]
        self.presence_version = snapshot["presence_version"]
        self.collaborators = collaborators(snapshot)
        self.editing = editing(snapshot)
        self.seqs: list[int] = []
        self.shown_at: dict[int, float] = {}  # seq -> when it was shown (time.monotonic())

    def apply(self, message: dict[str, Any]) -> None:
        if "seq" in message and message["type"] not in (
            "ack",
            "resume.complete",
            "resync.required",
        ):
            assert message["seq"] == self.seq + 1, (
                f"out of order or twice: {message} after {self.seq}"
            )
            self.seq = message["seq"]
            self.seqs.append(message["seq"])
            self.shown_at[message["seq"]] = time.monotonic()
        if message["type"] == "trip.updated":
            self.fields[message["field"]] = message["value"]
            self.version = message["version"]
        if message["type"] == "presence.update":
            assert message["version"] > self.presence_version, message
            self.presence_version = message["version"]
            self.collaborators = collaborators(message)
        if message["type"] == "editing.update":
            self.editing = editing(message)

    async def read(self, until: Any, timeout: float) -> dict[str, Any]:
        """Read (answering pings) until `until(message)`; the message that satisfied it, or
        TimeoutError after `timeout`. Each read gets what is left of it: an outer
        asyncio.timeout would cancel a wait_for, and Python 3.11's wait_for swallows a
        cancellation that arrives as its read completes, so the loop read on past the timeout
        (a chaos test hung until pytest-timeout, once in CI)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing satisfied the reader within {timeout} s")
            message = await recv_json(self.ws, left)
            if message["type"] == "ping":
                await send_json(self.ws, {"type": "pong", "request_id": message["id"]})
                continue
            self.apply(message)
            if until(message):
                return message

    async def until(self, shown: Any, timeout: float) -> None:
        """Read until `shown(self)` holds of what this client shows (at once if it does)."""
        if not shown(self):
            await self.read(lambda m: shown(self), timeout)

    async def settle(self, seconds: float) -> None:
        """Read whatever arrives for `seconds`."""
        try:
            await self.read(lambda m: False, seconds)
        except TimeoutError:
            pass


async def join(server: Any, trip: Trip, user: Any) -> TripView:
    ws, _ = await connect(server.ws_url, f"/ws/trips/{trip.pk}/", await token_for(user))
    return TripView(ws)


@sync_to_async
def database_state(trip_id: int) -> tuple[dict[str, Any], int, list[int]]:
    trip = Trip.objects.get(pk=trip_id)
    seqs = list(
        TripEvent.objects.filter(trip_id=trip_id).order_by("seq").values_list("seq", flat=True)
    )
    return (
        {name: fields.to_wire(name, getattr(trip, name)) for name in fields.EDITABLE_FIELDS},
        trip.seq,
        seqs,
    )


def update(field: str, value: Any, base_version: int, id_: str) -> dict[str, Any]:
    return {"type": "trip.update", "id": id_, "update_id": str(uuid.uuid4()), "field": field,
            "value": value, "base_version": base_version}  # fmt: skip


async def edit(view: TripView, field: str, value: Any, id_: str, timeout: float) -> dict[str, Any]:
    """Send an edit and read until its ack (the edit's own event may come before or after)."""
    await send_json(view.ws, update(field, value, view.version, id_))
    answer = await view.read(lambda m: m.get("request_id") == id_, timeout)
    assert answer["type"] == "ack", answer  # committed: never reported as failed
    return answer


async def converged(views: list[TripView], trip: Trip, timeout: float) -> None:
    """Every view ends exactly at the database's fields and seq, with no edit meanwhile."""
    db_fields, db_seq, _ = await database_state(trip.pk)
    for view in views:
        if view.seq < db_seq:
            await view.read(lambda m, view=view: view.seq >= db_seq, timeout)
        assert view.seq == db_seq
        assert view.fields == db_fields
