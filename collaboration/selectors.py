"""Reads for collaboration: what a user may see."""

from __future__ import annotations

from collaboration.models import TripMember


def trip_role(*, trip_id: int, user_id: int) -> str | None:
    """The user's role on the trip, or None when not a member (or no such trip)."""
    return (
        TripMember.objects.filter(trip_id=trip_id, user_id=user_id)
        .values_list("role", flat=True)
        .first()
    )
