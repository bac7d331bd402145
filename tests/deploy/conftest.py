"""The local topology under test: deploy.cluster's Cluster (what `make cluster` runs) on the test
database, with the fault tests' short timers, driven through its one URL.

`cluster` is one for the session (nginx, three daphne processes, Redis with a replica and three
Sentinels): a test may kill a process or the Redis primary; `cluster_healed` (autouse) restarts
any process a test before it left dead. Tests that need limits of their own start a smaller
cluster (`start_cluster`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from deploy.cluster import Cluster
from tests import factories
from tests.chaos.conftest import PROFILES
from tests.chaos.views import TripView, token_for
from tests.conftest import LIFTED_RATE_LIMITS, _database_url
from tests.wsclient import connect, recv_json, send_json

# What heals on a timer heals within a test (tests/chaos/conftest.py), and every test connects
# from 127.0.0.1: the limits are lifted unless a test starts a cluster with its own.
CLUSTER_ENV = {
    **PROFILES["short"],
    "REALTIME_CONNECTS_PER_MINUTE_PER_IP": "1000000",
    "REALTIME_RATE_LIMITS": LIFTED_RATE_LIMITS,
}
# Sentinel: a primary silent for a second is down; a failover may take three.
SENTINEL_TIMINGS = {"down_after_ms": 1000, "failover_timeout_ms": 3000}


@pytest.fixture(scope="session")
def start_cluster(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Cluster]]:
    """Start a Cluster on the test database (tests.settings.test: the suite's JWT keys), stopped
    at the end of the session; keyword arguments go to Cluster."""
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


@pytest.fixture(scope="session")
def cluster(start_cluster: Callable[..., Cluster]) -> Cluster:
    return start_cluster("cluster", processes=3)


@pytest.fixture
def cluster_healed(cluster: Cluster) -> Cluster:
    """The session's cluster with every daphne process running again (a test may kill one)."""
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
        resumed.seqs = shown.seqs
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
