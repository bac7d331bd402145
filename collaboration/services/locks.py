"""The trip's row lock, taken first by every change to a trip, and the actor's role on it."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import connection
from django.db.transaction import TransactionManagementError

from collaboration import sql
from collaboration.errors import NotFound
from collaboration.models import Trip, TripMember
from collaboration.selectors import require_edit_role

Role = TripMember.Role


def lock_trip(trip_id: int) -> Trip:
    try:
        return Trip.objects.select_for_update().get(pk=trip_id)
    except Trip.DoesNotExist:
        # The answer of a non-member (member_role): trip ids are not probed.
        raise NotFound("You are not a member of this trip.", trip_id=trip_id) from None


def member_role(trip: Trip, user: User) -> str:
    """The user's role on the trip; NotFound for a non-member."""
    role = TripMember.objects.filter(trip=trip, user=user).values_list("role", flat=True).first()
    if role is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip.pk)
    return role


def lock_for_edit(trip_id: int, actor: User) -> tuple[Trip, str]:
    """The trip's row lock and the actor's role in one statement (edits are the hot path);
    refused unless the actor may edit."""
    if not connection.in_atomic_block:  # as the ORM's select_for_update() refuses it
        raise TransactionManagementError("An edit must lock its trip inside a transaction.")
    trip = sql.trip_for_edit(trip_id, actor.pk)
    if trip is None:
        # The answer of a non-member, below: trip ids are not probed.
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    # The raw query's extra column: an attribute of this instance that Trip does not declare.
    return trip, require_edit_role(vars(trip)["actor_role"], trip_id=trip_id)
