"""How collaboration objects look on the wire (WebSocket events, REST bodies, the event log)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from collaboration import fields
from collaboration.models import ChatMessage, Conflict, Notification, Trip, TripEvent
from protocol import iso


def user_ref(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username()}


def trip_fields(trip: Trip) -> dict[str, Any]:
    return {name: fields.to_wire(name, getattr(trip, name)) for name in fields.EDITABLE_FIELDS}


def trip_state(trip: Trip) -> dict[str, Any]:
    return {
        "id": trip.pk,
        "fields": trip_fields(trip),
        "field_versions": {
            name: trip.field_versions.get(name, 0) for name in fields.EDITABLE_FIELDS
        },
        "version": trip.version,
        "seq": trip.seq,
    }


def field_change_dict(event: TripEvent, before: Any) -> dict[str, Any]:
    """A logged `trip.updated` as the history lists it; `before` the value it replaced."""
    message = event.message
    return {
        "seq": event.seq,
        "version": event.version,
        "field": event.field,
        "before": before,
        "after": message["value"],
        "by": user_ref(event.actor),
        "at": message["timestamp"],  # when it was made, as its live event said
        "source": event.source,
        "update_id": message.get("update_id"),
    }


def conflict_dict(conflict: Conflict) -> dict[str, Any]:
    return {
        "id": conflict.pk,
        "trip_id": conflict.trip_id,
        "field": conflict.field,
        "base_version": conflict.base_version,
        "status": conflict.status,
        "applied": {
            "value": conflict.applied_value,
            "by": user_ref(conflict.applied_by),
            "version": conflict.applied_version,
        },
        "proposed": {
            "value": conflict.proposed_value,
            "by": user_ref(conflict.proposed_by),
            "update_id": str(conflict.update_id),
        },
        "resolution": conflict.resolution or None,
        "resolved_value": conflict.resolved_value,
        "resolved_by": user_ref(conflict.resolved_by),
        "resolved_at": iso(conflict.resolved_at),
        "created_at": iso(conflict.created_at),
    }


def chat_message_dict(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.pk,
        "trip_id": message.trip_id,
        "seq": message.seq,
        "author": user_ref(message.author),
        "text": message.text,
        "client_id": str(message.client_id) if message.client_id else None,
        "created_at": iso(message.created_at),
    }


def notification_dict(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "data": notification.data,
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
    }
