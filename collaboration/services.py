"""Writes for collaboration: every change to trips and members goes through here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from collaboration.models import Trip, TripMember


@transaction.atomic
def trip_create(*, owner: AbstractBaseUser, name: str, **fields: object) -> Trip:
    trip = Trip.objects.create(name=name, created_by=owner, **fields)
    TripMember.objects.create(trip=trip, user=owner, role=TripMember.Role.OWNER)
    return trip


@transaction.atomic
def trip_member_set(*, trip: Trip, user: AbstractBaseUser, role: str) -> TripMember:
    member, _ = TripMember.objects.update_or_create(trip=trip, user=user, defaults={"role": role})
    return member
