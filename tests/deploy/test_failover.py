"""The Redis primary lost during live edits, on the local topology (deploy.cluster: nginx, three
daphne processes, Redis with a replica and three Sentinels): killed (kill -9; the Sentinels
elect the replica) or switched by an operator (SENTINEL FAILOVER). Every process finds the new
primary by itself: every acknowledged edit is in every client's final state, presence is exact
again within one keeper interval, the per-user socket cap still holds, and new sockets connect.
With CHAOS_REPORT set, how long each took is recorded for docs/deployment.md."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from deploy.cluster import Cluster
from tests import factories
from tests.chaos.conftest import record
from tests.chaos.views import token_for
from tests.deploy.conftest import (
    CLUSTER_ENV,
    SENTINEL_TIMINGS,
    LiveEdits,
    TripClient,
    bounded,
    upstream_of,
)
from tests.wsclient import closed_with, connect, open_socket, recv_json, send_json

pytestmark = pytest.mark.django_db(transaction=True)

FAULTS = {"kill": "Redis primary killed (kill -9)", "failover": "SENTINEL FAILOVER"}
KEEPER = float(CLUSTER_ENV["PRESENCE_REFRESH_SECONDS"])
RENEWAL = float(CLUSTER_ENV["REALTIME_CONNECTION_LEASE_SECONDS"]) / 3
CAP = int(CLUSTER_ENV["REALTIME_MAX_CONNECTIONS_PER_USER"])
# The Sentinels declare a silent primary down after down_after_ms, then elect: a few seconds.
ELECTION_BOUND = SENTINEL_TIMINGS["down_after_ms"] / 1000 + 10


def _fault(cluster: Cluster, fault: str) -> int:
    before = cluster.primary_port()
    if fault == "kill":
        cluster.kill_primary()
        return cluster.wait_for_new_primary(before, ELECTION_BOUND)
    # The switch, not the old primary's demotion some seconds later: the processes move at
    # the switch (realtime.redis_clients watches +switch-master).
    return cluster.sentinel_failover(ELECTION_BOUND, until_demoted=False)


async def _socket_refused(cluster: Cluster, token: str) -> bool:
    """Open one more notifications socket through the proxy: refused for the per-user cap
    (RATE_LIMIT_EXCEEDED, then 4029) or accepted (closed again at once)."""
    ws = await open_socket(cluster.ws_url, "/ws/notifications/")
    await send_json(ws, {"token": token, "id": "one-more"})
    first = await recv_json(ws)
    if first["type"] == "connection.established":
        await ws.close()
        return False
    assert first["error"]["details"]["reason"] == "too_many_connections", first
    code, _ = await closed_with(ws)
    assert code == 4029
    return True


@pytest.mark.parametrize("fault", list(FAULTS))
@bounded(100)
async def test_a_lost_redis_primary_loses_nothing_and_every_process_follows_it(
    cluster_healed: Cluster, crew, fault: str
):
    cluster = cluster_healed
    alice, bob, carol, trip = crew
    dave = await sync_to_async(factories.make_user)("dave")
    people = [await TripClient(cluster, trip, user).open() for user in (alice, bob, carol)]
    everyone = {"alice": 1, "bob": 1, "carol": 1}
    for client in people:
        await client.view.until(lambda v: v.collaborators == everyone, 10)
    # dave holds as many sockets as he may, spread over the processes.
    dave_token = await token_for(dave)
    held = [
        (await connect(cluster.ws_url, "/ws/notifications/", dave_token))[0] for _ in range(CAP)
    ]
    assert len({upstream_of(ws) for ws in held}) >= 2
    assert await _socket_refused(cluster, dave_token)  # the cap holds before the fault

    async with LiveEdits(people) as edits:
        await edits.until_each_acked(3)
        old = cluster.primary_port()
        started = time.monotonic()
        new = await asyncio.to_thread(_fault, cluster, fault)
        switched = time.monotonic()
        elected = switched - started
        assert new != old
        # Edits go on being acknowledged through and after the fault (PostgreSQL holds them).
        await edits.until_each_acked(edits.most_acked() + 5)
        await edits.finish()

    await edits.assert_nothing_lost(trip.pk, timeout=30)
    delay = edits.longest_delay(started)
    # From here, times count from the switch: what users wait for once a primary is named.

    # Presence exact on every screen within one keeper interval of the switch (and a second for
    # the update to travel), whatever the replica had missed.
    for client in people:
        left = max(0.1, switched + KEEPER + 1 - time.monotonic())
        await client.view.until(lambda v: v.collaborators == everyone, left)
    presence = time.monotonic() - switched

    # The cap holds on the new primary: dave's slots were replicated, or renewed from the
    # processes' live sockets within one renewal.
    deadline = time.monotonic() + RENEWAL + 2
    while not await _socket_refused(cluster, dave_token):
        assert time.monotonic() < deadline, "a socket over the per-user cap was accepted"
        await asyncio.sleep(0.2)
    capped = time.monotonic() - switched
    for ws in held:
        await ws.close()

    # A new socket on every process works on the new primary: a late joiner sees the edits
    # made through the fault and everyone present.
    upstreams = set()
    for _ in range(6):
        late = await TripClient(cluster, trip, carol).open()
        upstreams.add(late.upstream)
        assert late.view.fields == people[0].view.fields
        await late.view.ws.close()
    assert len(upstreams) == len(cluster.processes)

    if fault == "failover":  # the old primary, alive, becomes the new one's replica
        await asyncio.to_thread(cluster.wait_for_new_primary, old, 30)
        record(FAULTS[fault], "old primary serves as a replica", time.monotonic() - started, 30)
    record(FAULTS[fault], "Sentinels name a new primary", elected, ELECTION_BOUND)
    record(FAULTS[fault], "longest from an edit's ack to every client showing it", delay, 60)
    record(FAULTS[fault], "presence exact on every client, after the switch", presence, 60)
    record(FAULTS[fault], "per-user socket cap enforced again, after the switch", capped, 60)
