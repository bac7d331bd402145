"""Creates the demo users (alice, bob, carol) and one trip they share."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from collaboration.models import Trip, TripMember
from collaboration.services import members, trips

DEMO_PASSWORD = "tripsage-demo"  # documented in the README; demo data only
DEMO_TRIP = "Lisbon long weekend"
ROLES = {
    "alice": TripMember.Role.OWNER,
    "bob": TripMember.Role.EDITOR,
    "carol": TripMember.Role.VIEWER,
}


class Command(BaseCommand):
    help = "Create demo users alice (owner), bob (editor), carol (viewer) and their shared trip."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            # Known passwords (the README prints them) on a deployment would be open accounts.
            raise CommandError(
                "seed_demo refuses to run under production settings: it creates users with the "
                "published password 'tripsage-demo'. Create the first admin with "
                "`manage.py ensure_admin` (docs/deployment.md)."
            )
        self._seed()

    @transaction.atomic
    def _seed(self) -> None:
        user_model = get_user_model()
        users = {}
        for username in ROLES:
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            users[username] = user
        admin, created = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()

        trip = Trip.objects.filter(name=DEMO_TRIP, created_by=users["alice"]).first()
        if trip is None:
            trip = trips.trip_create(
                owner=users["alice"],
                name=DEMO_TRIP,
                destination="Lisbon, Portugal",
                start_date="2027-05-14",
                end_date="2027-05-17",
                budget="1200",
                currency="EUR",
            )
        for username, role in ROLES.items():
            members.trip_member_set(trip_id=trip.pk, actor=None, user=users[username], role=role)
        self.stdout.write(
            f"Demo data ready: trip {trip.pk} '{trip.name}' shared by alice (owner), bob (editor), "
            f"carol (viewer); password '{DEMO_PASSWORD}'. Admin: admin / {DEMO_PASSWORD}."
        )
