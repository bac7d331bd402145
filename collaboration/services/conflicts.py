"""Conflicts: detected when someone else changed the field after your base version; resolved.

A conflict applies nothing; one of its two editors, or an owner, settles it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from collaboration import fields, payloads, sql
from collaboration.errors import InvalidChange, NotAllowed, NotFound
from collaboration.models import Conflict, Notification, Trip, TripEvent
from collaboration.services.locks import Role, lock_for_edit
from collaboration.services.log import record_event
from collaboration.services.mutations import (
    MutationResult,
    apply_change,
    check_dates,
    first_answer,
    previous_answer,
    remember,
)
from collaboration.services.notifications import notify
from metrics import instruments


def changed_by_others_since(trip: Trip, field: str, base_version: int, actor: User) -> bool:
    """Whether someone other than `actor` changed `field` after `base_version`."""
    if trip.field_versions.get(field, 0) <= base_version:
        return False
    editors = trip.field_editors.get(field)
    if editors is not None:
        last_editor, others_last_version = editors
        if last_editor != actor.pk:
            return True  # the latest change, after base_version, is someone else's
        return others_last_version > base_version
    # No record (a trip older than field_editors): read the log.
    changes = TripEvent.objects.filter(
        trip=trip, type="trip.updated", field=field, version__gt=base_version
    )
    if changes.exclude(actor=actor).exists():
        return True
    if trip.log_floor:
        # Part of the history after base_version may be pruned: unknown changes are treated
        # as someone else's, so nothing is overwritten blindly.
        oldest = TripEvent.objects.filter(trip=trip, version__isnull=False).aggregate(
            Min("version")
        )["version__min"]
        return oldest is None or oldest > base_version + 1
    return False


def open_conflict(
    trip: Trip,
    *,
    field: str,
    base_version: int,
    proposed: Any,
    actor: User,
    update_id: uuid.UUID,
) -> MutationResult:
    """Record `actor`'s change as a conflict with the value in force; nothing is applied. The
    caller holds the trip's row lock and saves the trip."""
    editors = trip.field_editors.get(field)
    if editors is not None:
        applied_by_id = editors[0]
    else:
        last = _last_change(trip, field)
        applied_by_id = last.actor_id if last else None
    conflict = Conflict.objects.create(
        trip=trip,
        field=field,
        base_version=base_version,
        applied_value=fields.to_wire(field, getattr(trip, field)),
        applied_by_id=applied_by_id,
        applied_version=trip.field_versions.get(field, 0),
        proposed_value=fields.to_wire(field, proposed),
        proposed_by=actor,
        update_id=update_id,
    )
    trip.open_conflicts += 1
    transaction.on_commit(instruments.CONFLICTS.labels("detected").inc)
    if applied_by_id is not None and applied_by_id != actor.pk:
        _notify_conflict(trip, conflict, actor, applied_by_id)
    message = record_event(
        trip,
        "conflict.detected",
        actor=actor,
        field=field,
        payload={"conflict": payloads.conflict_dict(conflict)},
    )
    return first_answer("conflict", trip, field, update_id, message["seq"], conflict.pk)


def _last_change(trip: Trip, field: str) -> TripEvent | None:
    return (
        TripEvent.objects.filter(trip=trip, type="trip.updated", field=field)
        .select_related("actor")
        .order_by("-version")
        .first()
    )


@transaction.atomic
def conflict_resolve(
    *,
    trip_id: int,
    conflict_id: int,
    actor: User,
    choice: str,
    value: Any = None,
    update_id: uuid.UUID | None = None,
) -> MutationResult:
    """Settle an open conflict: `mine` and `theirs` are relative to the resolver; `value` sets an
    explicit value. The chosen value is applied as a normal change (unless it is already in
    force) and the conflict is closed for both editors."""
    trip, role = lock_for_edit(trip_id, actor)
    try:
        conflict = Conflict.objects.select_related("applied_by", "proposed_by").get(
            pk=conflict_id, trip=trip
        )
    except Conflict.DoesNotExist:
        raise NotFound("No such conflict on this trip.", conflict_id=conflict_id) from None
    involved = actor.pk in (conflict.applied_by_id, conflict.proposed_by_id)
    if not involved and role != Role.OWNER:
        raise NotAllowed("Only the two editors in the conflict or an owner can resolve it.")

    update_id = update_id or uuid.uuid5(uuid.NAMESPACE_URL, f"conflict-{conflict.pk}-{actor.pk}")
    request = {"kind": "resolve", "conflict_id": conflict_id, "choice": choice, "value": value}
    previous = previous_answer(trip, actor, update_id, request)
    if previous is not None:
        return previous

    field = conflict.field
    if conflict.status == Conflict.Status.RESOLVED:
        return first_answer("already_resolved", trip, field, update_id, 0, conflict.pk)

    if choice == Conflict.Choice.VALUE:
        chosen = value
    elif choice in (Conflict.Choice.MINE, Conflict.Choice.THEIRS):
        if value is not None:
            raise InvalidChange("`value` goes only with choice 'value'.", field="value")
        if not involved:
            raise InvalidChange(
                "You are not one of the two editors: choose 'value' with the value to keep.",
                field="choice",
            )
        mine_is_proposed = actor.pk == conflict.proposed_by_id
        take_proposed = (choice == Conflict.Choice.MINE) == mine_is_proposed
        chosen = conflict.proposed_value if take_proposed else conflict.applied_value
    else:
        raise InvalidChange("choice must be 'mine', 'theirs' or 'value'.", field="choice")

    cleaned = fields.clean(field, chosen)
    seq = 0
    if fields.to_wire(field, getattr(trip, field)) != fields.to_wire(field, cleaned):
        applied = apply_change(
            trip,
            field=field,
            value=cleaned,
            actor=actor,
            update_id=str(update_id),
            source="resolution",
        )
        seq = applied["seq"]
        check_dates(trip, field)

    conflict.status = Conflict.Status.RESOLVED
    trip.open_conflicts = max(0, trip.open_conflicts - 1)
    transaction.on_commit(instruments.CONFLICTS.labels("resolved").inc)
    conflict.resolution = choice
    conflict.resolved_value = fields.to_wire(field, cleaned)
    conflict.resolved_by = actor
    conflict.resolved_at = timezone.now()
    conflict.save()
    message = record_event(
        trip,
        "conflict.resolved",
        actor=actor,
        field=field,
        payload={"conflict": payloads.conflict_dict(conflict)},
    )
    sql.save(trip)  # the same per-field adaptation as edits, without the ORM's per-call SQL
    result = first_answer("applied", trip, field, update_id, seq or message["seq"], conflict.pk)
    remember(trip, actor, update_id, request, result)
    return result


def _notify_conflict(trip: Trip, conflict: Conflict, actor: User, applied_by_id: int) -> None:
    """The editor whose value is contested hears of it (the other one got the conflict ack)."""
    recipient = get_user_model().objects.filter(pk=applied_by_id).first()
    if recipient is None:
        return
    notify(
        recipient=recipient,
        kind=Notification.Kind.CONFLICT,
        title=f"{actor.get_username()} changed {conflict.field} on {trip.name} at the same time",
        body="Choose which value to keep.",
        link=f"/trips/{trip.pk}/edit",
        data={"trip_id": trip.pk, "conflict_id": conflict.pk, "field": conflict.field},
    )
