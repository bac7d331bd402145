"""DATABASE_THREADS bounds the PostgreSQL connections a server process holds under socket load,
HTTP_MAX_CONCURRENT_REQUESTS those it holds under REST load."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from tests import factories
from tests.conftest import DaphneServer, _database_url
from tests.wsclient import connect, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)
SOCKETS = 16


def _most_connections(application_name: str, stop: threading.Event, seen: list[int]) -> None:
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=int(db["PORT"] or 5432),
        user=db["USER"] or "postgres", dbname=db["NAME"], autocommit=True,
    ) as watcher:  # fmt: skip
        while not stop.is_set():
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [application_name],
            ).fetchone()
            seen.append(row[0] if row else 0)
            stop.wait(0.005)


async def _most_held_under_load(daphne_factory: Callable[..., DaphneServer], threads: int) -> int:
    """The most connections a daphne with `threads` database threads held at once while 16
    users connected to one trip at the same moment and each sent edits."""
    name = f"budget-{threads}-{uuid.uuid4().hex[:6]}"
    server = daphne_factory(
        name,
        DATABASE_URL=f"{_database_url()}?application_name={name}",
        DATABASE_THREADS=str(threads),
    )
    owner = await sync_to_async(factories.make_user)(f"owner-{name}")
    users = [await sync_to_async(factories.make_user)(f"u{i}-{name}") for i in range(SOCKETS)]
    trip = await sync_to_async(factories.make_trip)(owner, dict.fromkeys(users, "editor"))
    tokens = [await sync_to_async(factories.access_token)(user) for user in users]
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_most_connections, args=(name, stop, seen))
    watcher.start()
    try:
        opened = await asyncio.gather(
            *(connect(server.ws_url, f"/ws/trips/{trip.pk}/", token) for token in tokens)
        )
        sockets = [ws for ws, _ in opened]

        async def edit(i: int, ws: Any) -> None:
            base = ws.snapshot["trip"]["version"]
            for n in range(3):
                await send_json(ws, {
                    "type": "trip.update", "id": f"e{n}", "update_id": str(uuid.uuid4()),
                    "field": "notes", "value": f"{i}-{n}", "base_version": base,
                })  # fmt: skip
                await recv_until(
                    ws, lambda m, n=n: m["type"] == "ack" and m["request_id"] == f"e{n}"
                )

        await asyncio.gather(*(edit(i, ws) for i, ws in enumerate(sockets)))
        for ws in sockets:
            await ws.close()
    finally:
        stop.set()
        watcher.join(10)
        server.stop()
    return max(seen)


async def test_a_process_never_holds_more_connections_than_its_database_threads(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    assert await _most_held_under_load(daphne_factory, 2) <= 2
    # The same load with more threads holds more at once: the load is concurrent enough to
    # show a pool that did not bound it.
    assert await _most_held_under_load(daphne_factory, 8) > 2


def _most_held_under_rest_load(
    daphne_factory: Callable[..., DaphneServer], token: str, limit: int
) -> tuple[int, list[int]]:
    """The most connections a daphne allowing `limit` HTTP requests at once held while 24
    clients each listed their trips 3 times at the same moment; and the statuses they got."""
    name = f"rest-budget-{limit}-{uuid.uuid4().hex[:6]}"
    server = daphne_factory(
        name,
        DATABASE_URL=f"{_database_url()}?application_name={name}",
        DATABASE_THREADS="1",
        HTTP_MAX_CONCURRENT_REQUESTS=str(limit),
        REST_RATE_USER="100000/min",
        REST_RATE_IP="100000/min",
    )

    def list_trips(_: int) -> int:
        request = urllib.request.Request(
            f"{server.http_url}/api/trips/", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status

    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_most_connections, args=(name, stop, seen))
    watcher.start()
    try:
        with ThreadPoolExecutor(24) as pool:
            statuses = list(pool.map(list_trips, range(72)))
    finally:
        stop.set()
        watcher.join(10)
        server.stop()
    return max(seen), statuses


def test_a_process_runs_at_most_its_http_limit_of_requests_at_once(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    """Each REST request holds a connection on a thread of its own: the limit bounds them (one
    more for the socket threads, which this load does not use), and every request is served."""
    user = factories.make_user("rest-budget")
    token = factories.access_token(user)
    held, statuses = _most_held_under_rest_load(daphne_factory, token, 2)
    assert held <= 2 + 1 and statuses == [200] * 72
    # Not vacuous: with a high limit the same load holds more at once.
    held, statuses = _most_held_under_rest_load(daphne_factory, token, 64)
    assert held > 3 and statuses == [200] * 72
