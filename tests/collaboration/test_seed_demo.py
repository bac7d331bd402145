"""The demo data the README's run command creates."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from collaboration.management.commands.seed_demo import DEMO_PASSWORD
from collaboration.models import Trip, TripMember

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_three_users_sharing_one_trip_and_is_idempotent():
    call_command("seed_demo")
    call_command("seed_demo")
    trip = Trip.objects.get()
    roles = dict(TripMember.objects.filter(trip=trip).values_list("user__username", "role"))
    assert roles == {"alice": "owner", "bob": "editor", "carol": "viewer"}
    for username in roles:
        assert get_user_model().objects.get(username=username).check_password(DEMO_PASSWORD)
