"""`GET /api/trips/online/` (realtime/online_api.py): who is connected to each of my trips, read
from the presence store; only my trips; signed-in users only."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from realtime import online_api
from realtime.presence import PresenceTracker
from realtime.presence_store import PRESENCE, MemoryBackend, presence_member
from tests import factories

pytestmark = pytest.mark.django_db


def test_my_trips_say_who_is_connected_and_strangers_trips_are_not_listed(monkeypatch):
    alice, bob, _carol, trip = factories.make_crew()
    alone = factories.make_trip(alice)
    not_hers = factories.make_trip(factories.make_user("dora"))
    presence = PresenceTracker(MemoryBackend())
    monkeypatch.setattr(online_api, "tracker", lambda: presence)
    expires = time.time() + 60
    for connection, user, on in (("c1", bob, trip), ("c2", bob, trip), ("c3", alice, not_hers)):
        async_to_sync(presence.backend.add)(
            on.pk, PRESENCE, presence_member(connection, user), expires
        )

    client = APIClient()
    client.force_authenticate(alice)
    body = client.get("/api/trips/online/").json()
    by_trip = {entry["trip_id"]: entry for entry in body["trips"]}
    assert set(by_trip) == {trip.pk, alone.pk}  # newest first, hers only
    assert [e["trip_id"] for e in body["trips"]] == [alone.pk, trip.pk]
    assert by_trip[trip.pk]["collaborator_count"] == 1
    assert by_trip[trip.pk]["collaborators"] == [
        {"user": {"id": bob.pk, "username": "bob"}, "connections": 2}
    ]
    assert by_trip[alone.pk]["collaborator_count"] == 0


def test_anonymous_gets_the_401_envelope():
    response = APIClient().get("/api/trips/online/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
