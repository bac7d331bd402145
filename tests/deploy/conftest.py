"""The local topology under test: deploy.cluster's Cluster (what `make cluster` runs) on the test
database, with the fault tests' short timers, driven through its one URL.

`cluster` is one for the session (nginx, three daphne processes, Redis with a replica and three
Sentinels): a test may kill a process or the Redis primary; `cluster_healed` (autouse) restarts
any process a test before it left dead. Tests that need limits of their own start a smaller
cluster (`start_cluster`)."""

from __future__ import annotations

import asyncio
import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from deploy.cluster import Cluster
from tests import factories
from tests.chaos.conftest import CHAOS_TIMINGS
from tests.chaos.views import TripView, database_state, token_for
from tests.conftest import LIFTED_RATE_LIMITS, _database_url
from tests.wsclient import connect, recv_json, send_json

# The processes' timers: the suite's short ones, or (CHAOS_PROFILE=production, `make chaos`) the
# defaults, as in tests/chaos; every test connects from 127.0.0.1, so the limits are lifted
# unless a test starts a cluster with its own.
CLUSTER_ENV = {
    **CHAOS_TIMINGS,
    "REALTIME_CONNECTS_PER_MINUTE_PER_IP": "1000000",
    "REALTIME_RATE_LIMITS": LIFTED_RATE_LIMITS,
    # Small, so that the failover test can hold a user at the cap (tests/deploy/test_failover.py).
    "REALTIME_MAX_CONNECTIONS_PER_USER": "6",
}
# Sentinel: with short timers a primary silent for a second is down and a failover may take
# three; with production ones, docker-compose.yml's defaults.
SENTINEL_TIMINGS = (
    {"down_after_ms": 5000, "failover_timeout_ms": 10000}
    if os.environ.get("CHAOS_PROFILE") == "production"
    else {"down_after_ms": 1000, "failover_timeout_ms": 3000}
)


def bounded(seconds: float) -> Callable[[Any], Any]:
    """Fail an async test that runs longer than `seconds` with a TimeoutError raised where it
    waits (pytest-timeout's 120 s would only show idle threads, not the coroutine's line).
    Every wait in these tests is bounded; this catches a sum of them growing unexpectedly."""

    def wrap(test: Any) -> Any:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> None:
            async with asyncio.timeout(seconds):
                await test(*args, **kwargs)

        return run

    return wrap


@pytest.fixture(scope="package")
def start_cluster(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Cluster]]:
    """Start a Cluster on the test database (tests.settings.test: the suite's JWT keys), stopped
    after the last test of tests/deploy/; keyword arguments go to Cluster."""
    started: list[Cluster] = []

    def start(name: str, **options: Any) -> Cluster:
        options.setdefault("env", CLUSTER_ENV)
        with django_db_blocker.unblock():
            database_url = _database_url()
        cluster = Cluster(
            workdir=tmp_path_factory.mktemp(name),
            settings="tripsage.settings.test",
            database_url=database_url,
            migrate=False,  # pytest-django made the test database
            seed=False,
            say=lambda text: None,
            **SENTINEL_TIMINGS,
            **options,
        )
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture(scope="package")
def cluster(start_cluster: Callable[..., Cluster]) -> Cluster:
    return start_cluster("cluster", processes=3)


@pytest.fixture
def cluster_healed(cluster: Cluster) -> Cluster:
    """The session's cluster with every daphne process and Redis node running again (a test may
    kill one; a Redis node comes back empty, as a replica of the current primary)."""
    for node in cluster.redis_nodes:
        if not node.alive:
            cluster.restart_redis(node)
    for process in cluster.processes:
        if not process.alive:
            process.restart()
    cluster.wait_ready(30)
    return cluster


@pytest.fixture
def crew(transactional_db: None) -> Any:
    """The seed's roles: alice owns the trip, bob edits, carol views."""
    return factories.make_crew()


def upstream_of(ws: ClientConnection) -> str:
    """The process that serves a socket opened through the proxy (nginx's X-Upstream)."""
    assert ws.response is not None
    return str(ws.response.headers["X-Upstream"])


class TripClient:
    """One person's trip page through the proxy, as the seed's client behaves: on a dropped
    socket it reconnects (through the proxy: to whichever process nginx picks) and sends
    `resume` with the last `seq` it showed, keeping what it showed."""

    def __init__(self, cluster: Cluster, trip: Any, user: Any) -> None:
        self.cluster, self.trip, self.user = cluster, trip, user
        self.username = user.get_username()
        self.view: TripView
        self.upstreams: list[str] = []  # each socket's process, in order
        self.resumed = asyncio.Event()  # set once a reconnect has resumed

    @property
    def upstream(self) -> str:
        return self.upstreams[-1]

    async def open(self) -> TripClient:
        ws, _ = await connect(self.cluster.ws_url, f"/ws/trips/{self.trip.pk}/",
                              await token_for(self.user))  # fmt: skip
        self.upstreams.append(upstream_of(ws))
        self.view = TripView(ws)
        return self

    async def reopen(self, attempts: int = 10) -> None:
        """Reconnect and resume from what this client shows."""
        shown = self.view
        for attempt in range(attempts):
            try:
                await self.open()
                break
            except Exception:  # refused, a 502 while nginx finds a live process, a timeout
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))  # the seed's backoff, shortened
        resumed = self.view
        snapshot_seq = resumed.seq
        resumed.fields, resumed.seq, resumed.version = shown.fields, shown.seq, shown.version
        resumed.seqs, resumed.shown_at = shown.seqs, shown.shown_at
        await send_json(resumed.ws, {"type": "resume", "id": "resume", "last_seq": shown.seq})
        # The replay runs up to this socket's snapshot; what came after it is delivered live,
        # possibly before the replay (docs/protocol.md, "Reconnecting"): kept until the replay
        # is complete, then applied in order.
        live: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while True:
                message = await recv_json(resumed.ws)
                if message["type"] == "ping":
                    await send_json(resumed.ws, {"type": "pong", "request_id": message["id"]})
                elif message["type"] == "resume.complete":
                    break
                elif message.get("seq", 0) > snapshot_seq and message["type"] != "ack":
                    live.append(message)
                else:
                    resumed.apply(message)
        for message in live:
            resumed.apply(message)
        self.resumed.set()


async def edit_until(
    client: TripClient,
    field: str,
    acked: list[int],
    enough: asyncio.Event,
    acked_at: dict[int, float] | None = None,
) -> None:
    """Edit `field` one change after another, as the seed's client does: an edit whose socket
    dropped before its ack is sent again, unchanged (same update_id), after the reconnect and
    resume. Every ack's seq goes to `acked`; stops once `enough` is set."""
    number = 0
    while not enough.is_set():
        number += 1
        request_id = f"{client.username}-{number}"
        message = {"type": "trip.update", "id": request_id, "update_id": str(uuid.uuid4()),
                   "field": field, "value": f"{client.username} #{number}",
                   "base_version": client.view.version}  # fmt: skip
        while True:
            try:
                await send_json(client.view.ws, message)
                answer = await client.view.read(
                    lambda m, rid=request_id: m.get("request_id") == rid, 10
                )
                break
            except ConnectionClosed:
                await client.reopen()
        assert answer["type"] == "ack", answer
        assert answer["status"] in ("applied", "duplicate"), answer  # one field per editor
        acked.append(answer["seq"])
        if acked_at is not None:
            acked_at[answer["seq"]] = time.monotonic()


async def watch(client: TripClient) -> None:
    """Read what arrives, as a page does, reconnecting and resuming when the socket drops."""
    while True:
        try:
            await client.view.read(lambda m: False, 3600)
        except ConnectionClosed:
            await client.reopen()


async def settle(client: TripClient, db_seq: int) -> None:
    """Read until the client shows `db_seq`, reconnecting and resuming if its socket dropped
    while it was only watching."""
    while True:
        try:
            if client.view.seq < db_seq:
                await client.view.read(lambda m: client.view.seq >= db_seq, 10)
            return
        except ConnectionClosed:
            await client.reopen()


class LiveEdits:
    """Two editors (the first two people, on `name` and `notes`) editing one change after
    another and a viewer (the third) reading, each reconnecting and resuming as the seed's
    client does, until `finish()`; then `assert_nothing_lost`. Leaving the `async with` block
    cancels whatever still runs."""

    def __init__(self, people: list[TripClient]) -> None:
        self.people = people
        self.acked: dict[str, list[int]] = {people[0].username: [], people[1].username: []}
        self.enough = asyncio.Event()
        self.acked_at: dict[int, float] = {}  # seq -> when its editor got the ack
        self.editors: list[asyncio.Task[None]] = []
        self.watching: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveEdits:
        (first, second, viewer) = self.people[:3]
        self.editors = [
            asyncio.create_task(
                edit_until(first, "name", self.acked[first.username], self.enough, self.acked_at)
            ),
            asyncio.create_task(
                edit_until(second, "notes", self.acked[second.username], self.enough, self.acked_at)
            ),
        ]
        self.watching = asyncio.create_task(watch(viewer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Cancelled again until done: on Python 3.11 asyncio.wait_for swallows a cancellation
        # that arrives as its inner read completes, and the task reads on (a watcher then read
        # until the test's timeout, about one run in six).
        pending = {*self.editors, *([self.watching] if self.watching else [])}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1)

    def longest_delay(self, since: float) -> float:
        """The longest an edit acknowledged after `since` took from its ack to being shown on
        every client (call after assert_nothing_lost)."""
        return max(
            max(client.view.shown_at[seq] for client in self.people) - at
            for seq, at in self.acked_at.items()
            if at >= since
        )

    def most_acked(self) -> int:
        return max(len(seqs) for seqs in self.acked.values())

    async def until_each_acked(self, count: int, timeout: float = 60) -> None:
        """Until each editor has `count` acknowledged edits (an editor that failed fails here)."""

        async def wait() -> None:
            while min(len(seqs) for seqs in self.acked.values()) < count:
                for task in [task for task in self.editors if task.done()]:
                    task.result()
                await asyncio.sleep(0.05)

        await asyncio.wait_for(wait(), timeout)

    async def finish(self) -> None:
        self.enough.set()
        await asyncio.wait_for(asyncio.gather(*self.editors), 30)

    async def assert_nothing_lost(self, trip_id: int, timeout: float = 30) -> None:
        """Every acknowledged edit is in the database's log and was shown on every client, in
        order and once (TripView checks), and every client shows the database's state."""
        db_fields, db_seq, logged = await database_state(trip_id)
        all_acked = [seq for seqs in self.acked.values() for seq in seqs]
        assert set(all_acked) <= set(logged)
        for client in self.people:
            await asyncio.wait_for(settle(client, db_seq), timeout)
            assert (client.view.fields, client.view.seq) == (db_fields, db_seq), client.username
            assert set(all_acked) <= set(client.view.seqs), client.username
        first, second = self.people[:2]
        assert db_fields["name"] == f"{first.username} #{len(self.acked[first.username])}"
        assert db_fields["notes"] == f"{second.username} #{len(self.acked[second.username])}"
