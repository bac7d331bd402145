"""Client mutations (`trip.update`, `conflict.resolve`): a field change, its answer, retries.

A retried `update_id` gets the first answer again and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

from django.contrib.auth.models import User
from django.utils import timezone

from collaboration import fields, payloads, sql
from collaboration.errors import InvalidChange
from collaboration.models import ClientMutation, Trip
from collaboration.services.log import record_event


@dataclass(frozen=True)
class MutationResult:
    """The answer to a `trip.update` or `conflict.resolve`, stored for idempotent retries."""

    status: str  # applied | merged | conflict | duplicate | already_resolved
    original_status: str  # what the first attempt did (equals status on a first attempt)
    update_id: str | None
    field: str
    value: Any  # the field's wire value in force after this mutation
    version: int  # the trip version after this mutation
    seq: int  # the event this mutation recorded (0 when it recorded none)
    conflict_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Source = Literal["edit", "merge", "resolution"]  # TripEvent.Source


def apply_change(
    trip: Trip,
    *,
    field: str,
    value: Any,
    actor: User,
    update_id: str | None,
    source: Source = "edit",
) -> dict[str, Any]:
    """Set the field, bump the versions, note who changed it, and log `trip.updated` with the
    value it replaces (the history's `before`, a later merge's base)."""
    before = fields.to_wire(field, getattr(trip, field))
    setattr(trip, field, value)
    previous = trip.field_editors.get(field)
    if previous is not None and previous[0] == actor.pk:
        others_last_version = previous[1]
    else:  # the change being superseded was someone else's (or there was none)
        others_last_version = trip.field_versions.get(field, 0)
    trip.version += 1
    trip.field_versions = {**trip.field_versions, field: trip.version}
    trip.field_editors = {**trip.field_editors, field: [actor.pk, others_last_version]}
    return record_event(
        trip,
        "trip.updated",
        actor=actor,
        field=field,
        version=trip.version,
        before=before,
        source=source,
        payload={
            "update_id": update_id,
            "field": field,
            "value": fields.to_wire(field, value),
            "version": trip.version,
            "by": payloads.user_ref(actor),
            "source": source,
        },
    )


def check_dates(trip: Trip, field: str) -> None:
    """On the trip as it would be saved: the whole transaction rolls back if the dates cross."""
    if field in ("start_date", "end_date"):
        fields.check_dates_in_order(trip.start_date, trip.end_date, field)


def first_answer(
    status: str,
    trip: Trip,
    field: str,
    update_id: uuid.UUID,
    seq: int,
    conflict_id: int | None = None,
) -> MutationResult:
    """The answer to a first attempt, with the field's value now in force."""
    return MutationResult(
        status=status,
        original_status=status,
        update_id=str(update_id),
        field=field,
        value=fields.to_wire(field, getattr(trip, field)),
        version=trip.version,
        seq=seq,
        conflict_id=conflict_id,
    )


def previous_answer(
    trip: Trip, actor: User, update_id: uuid.UUID, request: dict[str, Any]
) -> MutationResult | None:
    """The first answer to this `update_id`, if it was used before."""
    stored = sql.client_mutation(trip.pk, actor.pk, update_id)
    if stored is None:
        return None
    existing_request, existing_result = stored
    if existing_request != request:
        raise InvalidChange(
            "update_id was already used for a different change: use a new update_id.",
            field="update_id",
        )
    return MutationResult(**{**existing_result, "status": "duplicate"})


def remember(
    trip: Trip,
    actor: User,
    update_id: uuid.UUID,
    request: dict[str, Any],
    result: MutationResult,
) -> None:
    """Store the first answer, so a retry of `update_id` gets it again."""
    sql.insert(
        ClientMutation,
        trip_id=trip.pk,
        actor_id=actor.pk,
        update_id=update_id,
        request=request,
        result=result.as_dict(),
        created_at=timezone.now(),
    )
