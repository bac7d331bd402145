"""DATABASE_THREADS bounds the PostgreSQL connections a server process holds under socket load."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
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
