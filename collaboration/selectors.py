"""Reads for collaboration: what a user may see."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from collaboration import payloads
from collaboration.errors import NotAllowed, NotFound
from collaboration.models import ChatMessage, Conflict, Notification, Trip, TripEvent, TripMember


def trip_role(*, trip_id: int, user_id: int) -> str | None:
    """The user's role on the trip, or None when not a member (or no such trip)."""
    return (
        TripMember.objects.filter(trip_id=trip_id, user_id=user_id)
        .values_list("role", flat=True)
        .first()
    )


EDIT_ROLES = (TripMember.Role.OWNER, TripMember.Role.EDITOR)


def require_edit_role(role: str | None, *, trip_id: int) -> str:
    """`role` if it lets its holder edit the trip: NotFound for a non-member (None), the answer
    of a trip that does not exist; NotAllowed for a viewer."""
    if role is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    if role not in EDIT_ROLES:
        raise NotAllowed("Viewers cannot edit this trip.", role=role, trip_id=trip_id)
    return role


def role_to_edit(*, trip_id: int, user_id: int) -> str:
    """The user's role on the trip if it lets them edit, read now from the database (not what a
    socket last heard), refused as an edit's row lock (services.locks.lock_for_edit) refuses."""
    return require_edit_role(trip_role(trip_id=trip_id, user_id=user_id), trip_id=trip_id)


def lost_memberships(*, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these (trip id, user id) pairs, those that are no membership (any more)."""
    wanted = set(pairs)
    if not wanted:
        return set()
    found = TripMember.objects.filter(
        trip_id__in={trip_id for trip_id, _ in wanted},
        user_id__in={user_id for _, user_id in wanted},
    ).values_list("trip_id", "user_id")
    return wanted - set(found)


def trip_for_member(*, trip_id: int, user: User) -> Trip:
    trip = Trip.objects.filter(pk=trip_id, members__user=user).first()
    if trip is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    return trip


def trip_for_owner(*, trip_id: int, user: User) -> Trip:
    """The trip if `user` owns it: NotFound for a non-member (the answer of a trip that does not
    exist), NotAllowed for a member who is not an owner. Endpoints that name a user or an object
    check this before looking the target up, so only an owner learns whether it exists."""
    membership = (
        TripMember.objects.filter(trip_id=trip_id, user=user).select_related("trip").first()
    )
    if membership is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    if membership.role != TripMember.Role.OWNER:
        raise NotAllowed("Only an owner can manage the members of this trip.")
    return membership.trip


def _member_trip_column(trip_id: int, user: User, column: str) -> Any:
    """One column of the trip, read only if `user` is a member; NotFound otherwise."""
    value = (
        Trip.objects.filter(pk=trip_id, members__user=user).values_list(column, flat=True).first()
    )
    if value is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    return value


def trips_for_user(*, user: User) -> QuerySet[Trip]:
    return Trip.objects.filter(members__user=user).distinct()


def memberships(*, user: User) -> QuerySet[TripMember]:
    """The user's memberships with their trips, newest trip first: the trips page's list."""
    return (
        TripMember.objects.filter(user=user)
        .select_related("trip")
        .prefetch_related("trip__members__user")
        .order_by("-trip_id")
    )


def members(*, trip: Trip) -> list[dict[str, Any]]:
    return [
        {"user": payloads.user_ref(member.user), "role": member.role}
        for member in TripMember.objects.filter(trip=trip).select_related("user").order_by("id")
    ]


def conflicts(*, trip: Trip, status: str | None = None, user: User | None = None):
    queryset = Conflict.objects.filter(trip=trip).select_related(
        "applied_by", "proposed_by", "resolved_by"
    )
    if status:
        queryset = queryset.filter(status=status)
    if user is not None:
        queryset = queryset.filter(Q(applied_by=user) | Q(proposed_by=user))
    return queryset.order_by("id")


def conflicts_with_ids(*, ids: list[int]) -> QuerySet[Conflict]:
    return Conflict.objects.filter(pk__in=ids)


def conflict(*, conflict_id: int) -> Conflict:
    return Conflict.objects.get(pk=conflict_id)


def user_with_id(*, user_id: int) -> User | None:
    return get_user_model().objects.filter(pk=user_id).first()


def revoked_users(*, user_ids: Iterable[int]) -> set[int]:
    """Of these users, those deactivated or deleted: their sockets must close."""
    wanted = set(user_ids)
    active = get_user_model().objects.filter(pk__in=wanted, is_active=True)
    return wanted - set(active.values_list("pk", flat=True))


def active_user(*, username: str) -> User | None:
    return get_user_model().objects.filter(username=username, is_active=True).first()


def trip_connect(*, trip_id: int, user: User) -> dict[str, Any] | None:
    """Everything a socket needs at connect: the user's role and the snapshot (fields, versions,
    `seq`, open conflicts that involve the user). None for a non-member."""
    return trips_connect(keys=[(trip_id, user)])[(trip_id, user.pk)]


def trips_connect(
    *, keys: Iterable[tuple[int, User]]
) -> dict[tuple[int, int], dict[str, Any] | None]:
    """`trip_connect` for many (trip id, user) pairs at once, keyed by (trip id, user id): two
    indexed queries whatever their number, and one more per user with open conflicts on a trip
    that has any. Connects are the hot path of a storm (realtime.consumers.trips batches them)."""
    users = {user.pk: user for _, user in keys}
    wanted = {(trip_id, user.pk) for trip_id, user in keys}
    trip_ids = {trip_id for trip_id, _ in wanted}
    roles = {
        (trip_id, user_id): role
        for trip_id, user_id, role in TripMember.objects.filter(
            trip_id__in=trip_ids, user_id__in=users
        ).values_list("trip_id", "user_id", "role")
        if (trip_id, user_id) in wanted
    }
    found = {trip.pk: trip for trip in Trip.objects.filter(pk__in={t for t, _ in roles})}
    states = {trip_id: payloads.trip_state(trip) for trip_id, trip in found.items()}
    snapshots: dict[tuple[int, int], dict[str, Any] | None] = dict.fromkeys(wanted)
    for (trip_id, user_id), role in roles.items():
        trip = found.get(trip_id)
        if trip is None:
            continue  # deleted between the two queries
        open_conflicts = (
            [
                payloads.conflict_dict(c)
                for c in conflicts(trip=trip, status="open", user=users[user_id])
            ]
            if trip.open_conflicts
            else []
        )
        snapshots[(trip_id, user_id)] = {
            # Shared by the batch's sockets: nothing writes to a snapshot once it is sent.
            "trip": states[trip_id],
            "seq": trip.seq,
            "role": role,
            "conflicts": open_conflicts,
        }
    return snapshots


def trip_snapshot(*, trip_id: int, user: User) -> dict[str, Any]:
    snapshot = trip_connect(trip_id=trip_id, user=user)
    if snapshot is None:
        raise NotFound("You are not a member of this trip.", trip_id=trip_id)
    return snapshot


@dataclass(frozen=True)
class EventPage:
    messages: list[dict[str, Any]]  # the logged messages, exactly as sent live
    current_seq: int
    complete: bool  # False when events after `after` were pruned: resync instead


def events_after(*, trip_id: int, after: int, limit: int | None = None) -> EventPage:
    trip = Trip.objects.only("seq", "log_floor").get(pk=trip_id)
    if after < trip.log_floor or after > trip.seq:
        return EventPage(messages=[], current_seq=trip.seq, complete=False)
    queryset = TripEvent.objects.filter(trip_id=trip_id, seq__gt=after).order_by("seq")
    if limit is not None:
        queryset = queryset[:limit]
    return EventPage(
        messages=list(queryset.values_list("message", flat=True)),
        current_seq=trip.seq,
        complete=True,
    )


@dataclass(frozen=True)
class HistoryPage:
    changes: list[dict[str, Any]]  # newest first
    has_more: bool  # older changes (of the field) are still in the log
    log_floor: int  # changes logged at or below this seq are no longer kept


def field_history(
    *,
    trip_id: int,
    user: User,
    field: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> HistoryPage:
    """The trip's field changes (of `field`, or of every field), newest first: the `limit` before
    seq `before` (or the newest). NotFound for non-members."""
    log_floor = _member_trip_column(trip_id, user, "log_floor")
    changes = TripEvent.objects.filter(trip_id=trip_id, type="trip.updated")
    rows = changes.filter(field=field) if field else changes
    if before is not None:
        rows = rows.filter(seq__lt=before)
    found = list(rows.select_related("actor").order_by("-seq")[: limit + 1])
    page = found[:limit]
    # A change logged before `before` was kept replaced what the previous change of its field
    # set: the next one down this page, or else the newest one below it in the log (one read per
    # field at most). None when the log no longer has it.
    set_by_older: dict[str, Any] = {}
    befores: dict[int, Any] = {}
    for row in reversed(page):
        value = row.before
        if value is None:
            if row.field not in set_by_older:
                previous = (
                    changes.filter(field=row.field, version__lt=row.version)
                    .order_by("-version")
                    .values_list("message", flat=True)
                    .first()
                )
                set_by_older[row.field] = previous["value"] if previous is not None else None
            value = set_by_older[row.field]
        befores[row.seq] = value
        set_by_older[row.field] = row.message["value"]
    return HistoryPage(
        changes=[payloads.field_change_dict(row, befores[row.seq]) for row in page],
        has_more=len(found) > limit,
        log_floor=log_floor,
    )


def trip_timeline(*, trip_id: int) -> QuerySet[TripEvent]:
    """Every logged event of the trip, newest first, with its actor: the admin's timeline."""
    return TripEvent.objects.filter(trip_id=trip_id).select_related("actor").order_by("-seq")


def stream_heads(*, trip_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """The last `seq` of each trip's event stream and chat stream ({"seq": .., "chat_seq": ..}),
    in one query: what every socket on these trips must reach (realtime.convergence)."""
    rows = Trip.objects.filter(pk__in=list(trip_ids)).values_list("pk", "seq", "chat_seq")
    return {pk: {"seq": seq, "chat_seq": chat_seq} for pk, seq, chat_seq in rows}


# -- chat ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPage:
    messages: list[dict[str, Any]]  # ascending seq
    seq: int  # the chat's last seq when read
    has_more: (
        bool  # more messages on the far side of the page (older for `before`, newer for `after`)
    )


def chat_page(
    *,
    trip_id: int,
    user: User,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> ChatPage:
    """A page of the trip's chat for a member: the newest `limit` (or those before `before`),
    or the oldest `limit` after `after`. NotFound for non-members."""
    seq = _member_trip_column(trip_id, user, "chat_seq")
    rows = ChatMessage.objects.filter(trip_id=trip_id).select_related("author")
    if after is not None:
        found = list(rows.filter(seq__gt=after).order_by("seq")[: limit + 1])
        has_more = len(found) > limit
        found = found[:limit]
    else:
        if before is not None:
            rows = rows.filter(seq__lt=before)
        found = list(rows.order_by("-seq")[: limit + 1])
        has_more = len(found) > limit
        found = found[:limit][::-1]
    return ChatPage([payloads.chat_message_dict(m) for m in found], seq, has_more)


# -- notifications ---------------------------------------------------------------------------


def unread_count(*, user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def is_own_notification(*, user: User, notification_id: int) -> bool:
    return user.notifications.filter(pk=notification_id).exists()


def notifications_for(
    *, user: User, unread_only: bool = False, before: int | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """The user's notifications, newest first; (page, has_more)."""
    rows = Notification.objects.filter(recipient=user)
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    found = list(rows.order_by("-id")[: limit + 1])
    return [payloads.notification_dict(n) for n in found[:limit]], len(found) > limit
