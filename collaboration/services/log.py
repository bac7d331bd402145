"""The trip's event log: each event gets the trip's next `seq`, a row, a fan-out after commit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

import protocol
from collaboration import sql
from collaboration.models import Trip, TripEvent
from events.broadcast import broadcast_on_commit
from events.groups import trip_group


def record_event(
    trip: Trip,
    type_: str,
    *,
    actor: User | None,
    field: str = "",
    version: int | None = None,
    before: str | None = None,
    source: str = "",
    payload: dict[str, Any],
) -> dict[str, Any]:
    """Give the event the trip's next `seq`, log it, and fan it out after commit. The caller
    holds the trip's row lock and saves the trip. `before` and `source` are a field change's
    (TripEvent's columns; `source` is also in its payload)."""
    trip.seq += 1
    message = protocol.server_message(type_, seq=trip.seq, trip_id=trip.pk, **payload)
    sql.insert(
        TripEvent,
        trip_id=trip.pk,
        seq=trip.seq,
        type=type_,
        field=field,
        version=version,
        before=before,
        source=source,
        actor_id=actor.pk if actor is not None else None,
        message=message,
        created_at=timezone.now(),
    )
    event: dict[str, Any] = {
        "type": "trip.event",
        "seq": trip.seq,
        "text": protocol.encode(message),  # serialized once, here, for every recipient
    }
    if type_.startswith("member."):
        event["user_id"] = payload["user"]["id"]  # that member's sockets act on it
    broadcast_on_commit(trip_group(trip.pk), event)
    _prune(trip)
    return message


def _prune(trip: Trip) -> None:
    """Keep the last TRIP_EVENT_RETENTION events; prune in batches, not on every write."""
    keep = settings.TRIP_EVENT_RETENTION
    if trip.seq - trip.log_floor <= keep + max(1, keep // 10):
        return
    floor = trip.seq - keep
    TripEvent.objects.filter(trip=trip, seq__lte=floor).delete()
    trip.log_floor = floor
