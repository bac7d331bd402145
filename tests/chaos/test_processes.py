"""A server process killed with SIGKILL: no disconnect handler runs anywhere on it. Its users
leave presence within the TTL, and their clients reconnect to the other process and resume with
nothing lost."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.chaos.conftest import record, timing
from tests.chaos.views import TripView, database_state, edit, join
from tests.wsclient import send_json

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_killed_process_users_leave_presence_and_resume_elsewhere_with_nothing_lost(
    processes, crew
):
    alice, bob, _, trip = crew
    a, b = processes
    on_a = await join(a, trip, alice)
    on_b = await join(b, trip, bob)
    await on_a.until(lambda v: v.collaborators == {"alice": 1, "bob": 1}, 10)
    await edit(on_a, "name", "Before the kill", "before", timeout=10)
    await on_b.until(lambda v: v.fields["name"] == "Before the kill", 10)

    b.process.kill()  # SIGKILL: bob's socket just drops
    killed = time.monotonic()
    with pytest.raises(ConnectionClosed):
        await on_b.read(lambda m: False, 10)
    # Alice keeps editing while bob is away; bob leaves presence within the TTL.
    for n in range(3):
        await edit(on_a, "notes", f"while bob is away {n}", f"away-{n}", timeout=10)
    ttl = max(timing("PRESENCE_TTL_SECONDS"), 3 * timing("PRESENCE_REFRESH_SECONDS"))
    await on_a.until(lambda v: v.collaborators == {"alice": 1}, ttl + 5)
    record("a server process killed (SIGKILL)", "its users out of presence",
           time.monotonic() - killed, ttl)  # fmt: skip

    # Bob's client reconnects to the other process and resumes from the last seq it showed.
    back = await join(a, trip, bob)
    resumed = TripView(back.ws)
    resumed.fields, resumed.seq, resumed.version = on_b.fields, on_b.seq, on_b.version
    await send_json(back.ws, {"type": "resume", "id": "resume", "last_seq": on_b.seq})
    complete = await resumed.read(lambda m: m["type"] == "resume.complete", 10)
    db_fields, db_seq, _ = await database_state(trip.pk)
    assert complete["replayed"] == db_seq - on_b.seq == 3
    assert (resumed.fields, resumed.seq) == (db_fields, db_seq)
    await on_a.until(lambda v: v.collaborators == {"alice": 1, "bob": 1}, 10)

    # And it is live again: the next edit reaches it, in order.
    await edit(on_a, "notes", "after the resume", "after", timeout=10)
    await resumed.until(lambda v: v.fields["notes"] == "after the resume", 10)
