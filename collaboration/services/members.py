"""Members and roles: owners manage them, anyone may leave, and a trip keeps an owner."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from collaboration import payloads
from collaboration.errors import InvalidChange, NotAllowed, NotFound
from collaboration.models import Notification, Trip, TripMember
from collaboration.services.locks import Role, lock_trip, member_role
from collaboration.services.log import record_event
from collaboration.services.notifications import notify
from events import security
from events.broadcast import broadcast_on_commit
from events.groups import chat_group


@transaction.atomic
def trip_member_set(*, trip_id: int, actor: User | None, user: User, role: str) -> TripMember:
    """Add a member or change a role. `actor=None` is for trusted code (management commands)."""
    trip = lock_trip(trip_id)
    _require_owner(trip, actor)
    if role not in Role.values:
        raise InvalidChange(f"role must be one of {', '.join(Role.values)}.", field="role")
    current = TripMember.objects.filter(trip=trip, user=user).first()
    if current is not None and current.role == role:
        return current
    if current is not None and current.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(trip, user)
    member, _ = TripMember.objects.update_or_create(trip=trip, user=user, defaults={"role": role})
    if actor is None or actor.pk != user.pk:
        _notify_membership(trip, user, role, added=current is None, actor=actor)
    _record_on_commit(
        security.Event.MEMBER_ADDED if current is None else security.Event.MEMBER_ROLE_CHANGED,
        trip=trip,
        actor=actor,
        user=user,
        role=role,
        previous_role=None if current is None else current.role,
    )
    record_event(
        trip, "member.updated", actor=actor, payload={"user": payloads.user_ref(user), "role": role}
    )
    trip.save(update_fields=["seq", "log_floor", "updated_at"])
    return member


@transaction.atomic
def trip_member_remove(*, trip_id: int, actor: User, user: User) -> None:
    """Remove a member (an owner may remove anyone; anyone may leave). The last owner stays."""
    trip = lock_trip(trip_id)
    if actor.pk != user.pk:
        _require_owner(trip, actor)
    member = TripMember.objects.filter(trip=trip, user=user).first()
    if member is None:
        raise NotFound("No such member.", user_id=user.pk)
    if member.role == Role.OWNER:
        _keep_an_owner(trip, user)
    member.delete()
    _record_on_commit(
        security.Event.MEMBER_REMOVED, trip=trip, actor=actor, user=user, previous_role=member.role
    )
    record_event(trip, "member.removed", actor=actor, payload={"user": payloads.user_ref(user)})
    broadcast_on_commit(chat_group(trip.pk), {"type": "chat.member_removed", "user_id": user.pk})
    trip.save(update_fields=["seq", "log_floor", "updated_at"])


def _record_on_commit(
    event: security.Event,
    *,
    trip: Trip,
    actor: User | None,
    user: User,
    role: str | None = None,
    previous_role: str | None = None,
) -> None:
    """The security log's record of a membership change, once it is committed."""
    user_id, trip_id = user.pk, trip.pk
    actor_id = None if actor is None else actor.pk
    reason = "left" if actor_id == user_id else None
    transaction.on_commit(
        lambda: security.record(
            event,
            user_id=user_id,
            actor_id=actor_id,
            trip_id=trip_id,
            role=role,
            previous_role=previous_role,
            reason=reason,
        )
    )


def _require_owner(trip: Trip, actor: User | None) -> None:
    if actor is not None and member_role(trip, actor) != Role.OWNER:
        raise NotAllowed("Only an owner can manage the members of this trip.")


def _keep_an_owner(trip: Trip, leaving: User) -> None:
    others = TripMember.objects.filter(trip=trip, role=Role.OWNER).exclude(user=leaving)
    if not others.exists():
        raise InvalidChange("A trip must keep at least one owner.", field="role")


def _notify_membership(
    trip: Trip, user: User, role: str, *, added: bool, actor: User | None
) -> None:
    by = actor.get_username() if actor is not None else "TripSage"
    notify(
        recipient=user,
        kind=Notification.Kind.MEMBER_ADDED if added else Notification.Kind.ROLE_CHANGED,
        title=(
            f"{by} added you to {trip.name} as {role}"
            if added
            else f"{by} made you {role} on {trip.name}"
        ),
        link=f"/trips/{trip.pk}/edit",
        data={"trip_id": trip.pk, "role": role, "by": payloads.user_ref(actor)},
    )
