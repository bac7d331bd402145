"""Trips: creating one, and changing its fields under optimistic concurrency.

One field from a socket, several from REST; a change from a base version someone else has moved
on from is merged when it can be (services.merges: free text, changes to different sentences),
else a conflict (services.conflicts), not applied.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from collaboration import fields, sql
from collaboration.errors import InvalidChange
from collaboration.models import Trip, TripMember
from collaboration.services.conflicts import changed_by_others_since
from collaboration.services.locks import Role, lock_for_edit
from collaboration.services.merges import stale_change
from collaboration.services.mutations import (
    MutationResult,
    apply_change,
    check_dates,
    first_answer,
    previous_answer,
    remember,
)


@transaction.atomic
def trip_create(*, owner: User, name: str, **values: Any) -> Trip:
    """A new trip with `owner` as its owner. Values are wire values, validated like edits."""
    cleaned = {"name": fields.clean("name", name)}
    for field, value in values.items():
        cleaned[field] = fields.clean(field, value)
    fields.check_dates_in_order(cleaned.get("start_date"), cleaned.get("end_date"), "end_date")
    trip = Trip.objects.create(created_by=owner, **cleaned)
    TripMember.objects.create(trip=trip, user=owner, role=Role.OWNER)
    return trip


@transaction.atomic
def trip_update(
    *,
    trip_id: int,
    actor: User,
    update_id: uuid.UUID,
    field: str,
    value: Any,
    base_version: int,
) -> MutationResult:
    """Change one field, unless someone else changed it after `base_version`: then merge the
    change with theirs (free text, different sentences), or record a conflict instead and apply
    nothing. A retried `update_id` gets the first answer again."""
    trip, _ = lock_for_edit(trip_id, actor)
    result = _update_field(trip, actor, update_id, field, value, base_version)
    check_dates(trip, field)
    sql.save(trip)
    return result


@transaction.atomic
def trip_update_fields(
    *,
    trip_id: int,
    actor: User,
    idempotency_key: str,
    changes: dict[str, Any],
    base_version: int,
) -> list[MutationResult]:
    """Several fields from one base version, all or nothing (REST PATCH). Each field is its own
    mutation, keyed by `idempotency_key` and the field name; dates are checked on the result."""
    trip, _ = lock_for_edit(trip_id, actor)
    for field, value in changes.items():
        fields.clean(field, value)  # every value is valid before anything changes
    results = [
        _update_field(
            trip,
            actor,
            uuid.uuid5(uuid.NAMESPACE_URL, f"{idempotency_key}/{field}"),
            field,
            value,
            base_version,
        )
        for field, value in changes.items()
    ]
    check_dates(trip, "end_date" if "end_date" in changes else "start_date")
    sql.save(trip)
    return results


def _update_field(
    trip: Trip,
    actor: User,
    update_id: uuid.UUID,
    field: str,
    value: Any,
    base_version: int,
) -> MutationResult:
    request = {"kind": "update", "field": field, "value": value, "base_version": base_version}
    previous = previous_answer(trip, actor, update_id, request)
    if previous is not None:
        return previous

    cleaned = fields.clean(field, value)
    if base_version < 0 or base_version > trip.version:
        raise InvalidChange(
            f"base_version {base_version} is not a version of this trip (current: {trip.version}).",
            field="base_version",
        )

    if changed_by_others_since(trip, field, base_version, actor):
        result = stale_change(
            trip,
            field=field,
            base_version=base_version,
            proposed=cleaned,
            actor=actor,
            update_id=update_id,
        )
    else:
        message = apply_change(
            trip, field=field, value=cleaned, actor=actor, update_id=str(update_id)
        )
        result = first_answer("applied", trip, field, update_id, message["seq"])
    remember(trip, actor, update_id, request, result)
    return result
