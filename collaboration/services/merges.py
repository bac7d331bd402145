"""Merges: a stale change of a free-text field merged with what others changed since its base.

A `trip.update` whose `base_version` someone else has moved on from is, for MERGEABLE_FIELDS, merged
three-way (collaboration.merge) against the field's text at `base_version`, read from the event
log. Changes to different sentences or lines are applied together as one change with source
"merge"; anything else (overlapping changes, a base the log no longer tells) is a conflict
(services.conflicts), as for every other field.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User

from collaboration import fields, merge
from collaboration.errors import InvalidChange
from collaboration.models import Trip, TripEvent
from collaboration.services.conflicts import open_conflict
from collaboration.services.mutations import MutationResult, apply_change, first_answer


def stale_change(
    trip: Trip,
    *,
    field: str,
    base_version: int,
    proposed: Any,
    actor: User,
    update_id: uuid.UUID,
) -> MutationResult:
    """A change (`proposed`, a cleaned value) from a `base_version` someone else has moved on
    from: applied merged with their changes and answered `merged`, or else recorded as a conflict.
    A merge that changes nothing (the same change was made already) is answered without a
    `trip.updated`, with `seq` 0. The caller holds the trip's row lock and saves the trip."""
    merged = _merged(trip, field, base_version, proposed)
    if merged is None:
        return open_conflict(
            trip,
            field=field,
            base_version=base_version,
            proposed=proposed,
            actor=actor,
            update_id=update_id,
        )
    seq = 0
    if merged != fields.to_wire(field, getattr(trip, field)):
        message = apply_change(
            trip, field=field, value=merged, actor=actor, update_id=str(update_id), source="merge"
        )
        seq = message["seq"]
    return first_answer("merged", trip, field, update_id, seq)


def _merged(trip: Trip, field: str, base_version: int, proposed: Any) -> str | None:
    """The field's text with the changes since `base_version` and `proposed`'s both in it; None
    when they do not merge (not free text, overlapping, too long together, base unknown)."""
    if field not in fields.MERGEABLE_FIELDS:
        return None
    base = text_at(trip, field, base_version)
    if base is None:
        return None
    merged = merge.merge(base, fields.to_wire(field, getattr(trip, field)), proposed)
    if merged is None:
        return None
    try:
        return fields.clean(field, merged)  # two changes may together exceed the length
    except InvalidChange:
        return None


def text_at(trip: Trip, field: str, version: int) -> str | None:
    """A text field's value at trip version `version`, from the log; None when the log cannot
    tell: changes after `version` were pruned, or the value was never logged (it is the one the
    trip was created with, or every change that could tell was logged before `before` was kept).
    The caller holds the trip's row lock."""
    # Every version after the first (the trip's creation) is made by one logged `trip.updated`.
    if trip.log_floor and not _logged(trip, max(version + 1, 2)):
        return None  # changes after `version` were pruned
    changes = TripEvent.objects.filter(trip=trip, type="trip.updated", field=field)
    following = changes.filter(version__gt=version).order_by("version").only("before").first()
    if following is not None and following.before is not None:
        return following.before
    # The log holds a suffix of the changes: if the last change up to `version` is in it, it is
    # the one that set the value at `version`.
    last = changes.filter(version__lte=version).order_by("-version").only("message").first()
    return last.message["value"] if last is not None else None


def _logged(trip: Trip, version: int) -> bool:
    """Whether the change that made trip version `version` is still in the log."""
    return TripEvent.objects.filter(
        trip=trip, field__in=fields.EDITABLE_FIELDS, version=version
    ).exists()
