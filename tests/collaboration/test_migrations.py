"""Data migrations of collaboration, run on rows as the release before them wrote them."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection

import protocol
from collaboration.models import TripEvent
from collaboration.services import conflicts
from tests import factories

pytestmark = pytest.mark.django_db

before_source = importlib.import_module("collaboration.migrations.0005_tripevent_before_source")


class SchemaEditor:
    """What the migration uses of Django's schema editor, on the test's connection: SQLite's
    refuses to open inside the test's transaction (migrations run it outside one)."""

    connection = connection
    quote_name = staticmethod(connection.ops.quote_name)

    def execute(self, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)


update = factories.update


def test_0005_gives_logged_changes_their_source_in_the_row_and_the_message():
    alice, bob, _, trip = factories.make_crew()
    update(trip, alice, "budget", "3000", 1)
    clash = update(trip, bob, "budget", "3500", 1)
    conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=clash.conflict_id, actor=bob, choice="mine"
    )
    update(trip, alice, "notes", "hi", 3)
    expected = dict(TripEvent.objects.values_list("seq", "source"))
    assert sorted(expected.values()) == ["", "", "", "", "edit", "edit", "resolution"]
    # As the last release logged them: no source, in the row or in the message.
    for event in TripEvent.objects.all():
        event.message = {k: v for k, v in event.message.items() if k != "source"}
        event.source = ""
        event.save(update_fields=["message", "source"])

    before_source.backfill_sources(apps, SchemaEditor())

    assert dict(TripEvent.objects.values_list("seq", "source")) == expected
    for event in TripEvent.objects.filter(type="trip.updated"):
        assert event.message["source"] == event.source
        protocol.check_server_message(event.message)  # a replay fits the schema again
    assert not any("source" in e.message for e in TripEvent.objects.exclude(type="trip.updated"))
