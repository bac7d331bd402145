"""Convergence with no next event (realtime.convergence): an event that never reaches a process
is filled in from the log by the periodic stream check. The test process commits through the
service itself, so its publish goes to the suite's Redis, which these processes do not hear:
the event is lost on its way by construction, with no fault anyone would notice."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from asgiref.sync import sync_to_async

from collaboration.services import trips
from tests.chaos.conftest import CONVERGENCE_BOUND, record
from tests.chaos.views import converged, edit, join

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def edit_unheard(trip, actor, field: str, value: str) -> int:
    """An edit committed and logged whose event no process hears; returns its seq."""
    trip.refresh_from_db()
    result = trips.trip_update(trip_id=trip.pk, actor=actor, update_id=uuid.uuid4(),
                               field=field, value=value, base_version=trip.version)  # fmt: skip
    return result.as_dict()["seq"]


async def test_an_event_lost_on_its_way_reaches_every_socket_with_no_next_event(processes, crew):
    alice, bob, _, trip = crew
    a, b = processes
    on_a = await join(a, trip, alice)
    on_b = await join(b, trip, bob)

    await edit_unheard(trip, alice, "name", "Lost on its way")
    lost = time.monotonic()
    await converged([on_a, on_b], trip, timeout=CONVERGENCE_BOUND + 3)
    record("an event lost on its way (nothing else wrong)", "every socket at the database's seq",
           time.monotonic() - lost, CONVERGENCE_BOUND)  # fmt: skip
    for process in processes:  # one socket on each was found behind and caught up
        caught_up = await asyncio.to_thread(
            process.metric, "tripsage_stream_catch_ups_total", connection_type="trip_collaboration"
        )
        assert caught_up == 1.0


async def test_a_socket_behind_the_kept_log_gets_a_fresh_snapshot(processes, crew, settings):
    """More events lost than the log keeps: the socket is sent `resync.required` with the
    database's state, as a `resume` from that far back would be, and then goes on live."""
    settings.TRIP_EVENT_RETENTION = 3  # the service prunes in this process
    alice, bob, _, trip = crew
    a, _ = processes
    on_a = await join(a, trip, bob)
    for n in range(6):
        seq = await edit_unheard(trip, alice, "notes", f"unheard {n}")
    resync = await on_a.read(lambda m: m["type"] == "resync.required", CONVERGENCE_BOUND + 3)
    assert resync["snapshot"]["seq"] == seq
    assert resync["snapshot"]["trip"]["fields"]["notes"] == "unheard 5"
    on_a.fields, on_a.seq = dict(resync["snapshot"]["trip"]["fields"]), seq
    on_a.version = resync["snapshot"]["trip"]["version"]
    await edit(on_a, "notes", "live again", "live", timeout=10)
    await on_a.until(lambda v: v.fields["notes"] == "live again", 10)
