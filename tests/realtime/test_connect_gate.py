"""Admission control (realtime/connect_gate.py) over the network: a real daphne process with a small
REALTIME_MAX_OPENING_SOCKETS, real WebSocket clients, the browser client's reconnect policy."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake

from collaboration.models import TripMember
from protocol import CloseCode
from tests import factories
from tests.wsclient import (
    closed_with,
    connect,
    open_socket,
    recv_json,
    recv_until,
    send_json,
)

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 4
# What a browser reports for a connection lost without a close frame. A refused client that
# answers the server's close slower than daphne's closing-handshake timeout gets a TCP reset,
# which discards what it had not read yet (the 101, the refusal): autobahn's 1 s timeout runs on
# txaio's batched timer, which truncates its deadline to a whole second, so it fires anywhere
# from 0 to 1 s after the close. A busy test process is such a client; the browser client
# retries it with its backoff, as this one does (docs/decisions.md, "Issue 16").
DROPPED = 1006
RETRY_SECONDS = 0.25
OPENING = "tripsage_ws_connections_opening"
WAITING = "tripsage_ws_connections_waiting"
REFUSALS = "tripsage_rate_limit_refusals_total"


@pytest.fixture(scope="module")
def gated(module_daphne_factory):
    """One process that lets LIMIT sockets open at once, with a short auth timeout (sockets that
    never send a token end soon) and a short retry hint (the storm converges quickly)."""
    return module_daphne_factory(
        "gated",
        REALTIME_MAX_OPENING_SOCKETS=str(LIMIT),
        REALTIME_OVERLOAD_RETRY_SECONDS=str(RETRY_SECONDS),
        REALTIME_AUTH_TIMEOUT_SECONDS="2",
        REALTIME_OPENING_WAIT_SECONDS="0",  # refused at once (the waiting room: below)
    )


@pytest.fixture(scope="module")
def waiting_room(module_daphne_factory):
    """LIMIT sockets open at once, up to 2 more wait for a place for at most 1.5 s."""
    return module_daphne_factory(
        "waiting-room",
        REALTIME_MAX_OPENING_SOCKETS=str(LIMIT),
        REALTIME_OVERLOAD_RETRY_SECONDS=str(RETRY_SECONDS),
        REALTIME_AUTH_TIMEOUT_SECONDS="4",
        REALTIME_OPENING_WAIT_SECONDS="1.5",
        REALTIME_MAX_WAITING_SOCKETS="2",
    )


@pytest.fixture
def crew(transactional_db):
    alice, bob, carol, trip = factories.make_crew()
    return alice, bob, carol, trip, f"/ws/trips/{trip.pk}/"


async def metric(server, name: str, **labels: str) -> float:
    return await asyncio.to_thread(server.metric, name, **labels)


async def opening_becomes(server, expected: int, gauge: str = OPENING) -> None:
    """Wait (bounded) until the process counts `expected` sockets opening (or waiting, with
    `gauge`); fail if it never does."""
    for _ in range(200):
        if await metric(server, gauge) == expected:
            return
        await asyncio.sleep(0.05)
    assert await metric(server, gauge) == expected


async def send_token(ws: ClientConnection, token: str) -> None:
    """The first message, as the browser client sends it on open; the gate may have refused
    and closed the socket already (it does not wait for the token)."""
    try:
        await send_json(ws, {"token": token})
    except ConnectionClosed:
        pass


async def refused(server, path: str, token: str) -> tuple[int, dict[str, Any]]:
    ws = await open_socket(server.ws_url, path)
    await send_token(ws, token)
    code, messages = await closed_with(ws)
    [error] = messages
    return code, error


async def test_over_the_limit_a_connect_is_refused_with_a_retry_hint_and_4013(gated, crew):
    alice, *_, path = crew
    before = await metric(gated, REFUSALS, limit="overloaded")
    silent = [await open_socket(gated.ws_url, path) for _ in range(LIMIT)]  # no token yet
    await opening_becomes(gated, LIMIT)

    code, error = await refused(gated, path, factories.access_token(alice))
    assert code == CloseCode.TRY_AGAIN_LATER == 4013
    assert error["type"] == "error" and error["request_id"] is None  # before any token
    assert error["error"]["code"] == "SERVER_ERROR"
    details = error["error"]["details"]
    assert details["reason"] == "overloaded" and details["retryable"] is True
    # The hint is jittered by the server: between the setting and twice it.
    assert RETRY_SECONDS <= details["retry_after"] <= 2 * RETRY_SECONDS
    assert await metric(gated, REFUSALS, limit="overloaded") == before + 1
    assert await metric(gated, OPENING) == LIMIT  # the refused socket never counted

    # One opening socket sends its token: established, it no longer counts, and a new one opens.
    await send_json(silent[0], {"token": factories.access_token(alice)})
    await recv_until(silent[0], lambda m: m["type"] == "trip.snapshot")
    await opening_becomes(gated, LIMIT - 1)
    ws, _ = await connect(gated.ws_url, path, factories.access_token(alice))
    await opening_becomes(gated, LIMIT - 1)
    for socket in (ws, silent[0]):
        await socket.close()
    for socket in silent[1:]:
        await socket.close()
    await opening_becomes(gated, 0)


async def test_sockets_that_end_while_opening_give_their_place_back(gated, crew):
    alice, *_, path = crew
    stranger = await sync_to_async(factories.make_user)("stranger")

    # A client that closes before sending its token, one that drops the TCP connection without a
    # close frame, one that never sends a token (the server times it out), one with a bad token
    # (4001), one that is not a member (4003, refused by the consumer, before established).
    closes = await open_socket(gated.ws_url, path)
    drops = await open_socket(gated.ws_url, path)
    silent = await open_socket(gated.ws_url, path)
    await opening_becomes(gated, 3)
    await closes.close()
    drops.transport.abort()
    await opening_becomes(gated, 1)
    code, _ = await closed_with(silent)
    assert code == CloseCode.AUTHENTICATION_FAILED  # reason "timeout"
    await opening_becomes(gated, 0)

    code, _ = await refused(gated, path, "not-a-jwt")
    assert code == CloseCode.AUTHENTICATION_FAILED
    code, error = await refused(gated, path, factories.access_token(stranger))
    assert code == CloseCode.AUTHORIZATION_FAILED, error
    await opening_becomes(gated, 0)

    # Nothing leaked: LIMIT sockets can open at once again, and only the next is refused.
    waiting = [await open_socket(gated.ws_url, path) for _ in range(LIMIT)]
    await opening_becomes(gated, LIMIT)
    code, _ = await refused(gated, path, factories.access_token(alice))
    assert code == CloseCode.TRY_AGAIN_LATER
    for ws in waiting:
        await ws.close()
    await opening_becomes(gated, 0)


# -- the waiting room ---------------------------------------------------------------------------


async def test_over_the_limit_a_connect_waits_for_a_place_and_gets_the_first_that_frees(
    waiting_room, crew
):
    """Its handshake is answered once a place frees: no refusal, no second handshake."""
    alice, *_, path = crew
    refusals_before = await metric(waiting_room, REFUSALS, limit="overloaded")
    silent = [await open_socket(waiting_room.ws_url, path) for _ in range(LIMIT)]
    await opening_becomes(waiting_room, LIMIT)

    joining = asyncio.create_task(connect(waiting_room.ws_url, path, factories.access_token(alice)))
    await opening_becomes(waiting_room, 1, WAITING)
    assert not joining.done()  # waiting, its handshake unanswered

    await silent[0].close()  # a place frees: handed to the waiting connect
    ws, established = await asyncio.wait_for(joining, 10)
    assert established["type"] == "connection.established"
    assert ws.snapshot["type"] == "trip.snapshot"
    await opening_becomes(waiting_room, 0, WAITING)
    await opening_becomes(waiting_room, LIMIT - 1)
    assert await metric(waiting_room, REFUSALS, limit="overloaded") == refusals_before
    for socket in [ws, *silent[1:]]:
        await socket.close()
    await opening_becomes(waiting_room, 0)


async def test_a_connect_is_refused_when_no_place_frees_in_time_or_the_room_is_full(
    waiting_room, crew
):
    alice, *_, path = crew
    silent = [await open_socket(waiting_room.ws_url, path) for _ in range(LIMIT)]
    await opening_becomes(waiting_room, LIMIT)

    # Two wait (the room's size); the third is refused at once, while they still wait.
    waiters = [
        asyncio.create_task(refused(waiting_room, path, factories.access_token(alice)))
        for _ in range(2)
    ]
    await opening_becomes(waiting_room, 2, WAITING)
    code, error = await refused(waiting_room, path, factories.access_token(alice))
    assert code == CloseCode.TRY_AGAIN_LATER
    assert error["error"]["details"]["reason"] == "overloaded"
    assert not any(w.done() for w in waiters)

    # No place frees within REALTIME_OPENING_WAIT_SECONDS: both are refused, with the hint.
    for code, error in await asyncio.gather(*waiters):
        assert code == CloseCode.TRY_AGAIN_LATER
        assert RETRY_SECONDS <= error["error"]["details"]["retry_after"] <= 2 * RETRY_SECONDS
    await opening_becomes(waiting_room, 0, WAITING)
    assert await metric(waiting_room, OPENING) == LIMIT  # the refused never counted
    for socket in silent:
        await socket.close()
    await opening_becomes(waiting_room, 0)


async def test_a_client_that_leaves_while_waiting_leaks_nothing(waiting_room, crew):
    alice, *_, path = crew
    silent = [await open_socket(waiting_room.ws_url, path) for _ in range(LIMIT)]
    await opening_becomes(waiting_room, LIMIT)
    leaving = asyncio.create_task(open_socket(waiting_room.ws_url, path))
    await opening_becomes(waiting_room, 1, WAITING)
    leaving.cancel()  # the client gives up on its handshake: its TCP connection closes
    for socket in silent:
        await socket.close()
    await opening_becomes(waiting_room, 0, WAITING)
    await opening_becomes(waiting_room, 0)
    # Nothing leaked: LIMIT sockets open at once again.
    sockets = [
        await connect(waiting_room.ws_url, path, factories.access_token(alice))
        for _ in range(LIMIT)
    ]
    await opening_becomes(waiting_room, 0)
    for ws, _ in sockets:
        await ws.close()


# -- a storm beyond capacity -------------------------------------------------------------------


@dataclass
class ReconnectPolicy:
    """The browser client's policy (clients/js/websocket-connection.js, _scheduleReconnect):
    full jitter, random() * min(max_delay, base * 2^(attempt-1)); after a refusal with
    `retry_after`, at least retry_after * (1 + random()) (4029: retry_after itself)."""

    base: float
    max_delay: float = 30.0
    random: Callable[[], float] = random.random

    def delay(self, attempt: int, code: int, retry_after: float | None) -> float:
        wait = self.random() * min(self.max_delay, self.base * 2 ** (attempt - 1))
        if retry_after is not None and retry_after > 0:
            jitter = 1.0 if code == CloseCode.RATE_LIMITED else 1 + self.random()
            wait = max(wait, retry_after * jitter)
        return wait


@dataclass
class StormClient:
    """One member connecting like the browser client: token first, reconnect on refusal."""

    token: str
    policy: ReconnectPolicy
    refusals: Counter[int] = field(default_factory=Counter)
    ws: ClientConnection | None = None

    async def run(self, base_url: str, path: str) -> None:
        attempt = 0
        while True:
            code, retry_after = await self._attempt(base_url, path)
            if code is None:
                return
            self.refusals[code] += 1
            attempt += 1
            await asyncio.sleep(self.policy.delay(attempt, code, retry_after))

    async def _attempt(self, base_url: str, path: str) -> tuple[int | None, float | None]:
        """(None, None) once connected (the snapshot received); else the close code and the
        refusal's retry_after, or DROPPED for a connection lost without a close frame."""
        ws = None
        try:
            ws = await open_socket(base_url, path)
            await send_token(ws, self.token)
            first = await recv_json(ws)
        except (OSError, InvalidHandshake, ConnectionClosedError):
            rcvd = ws.close_rcvd if ws is not None else None
            return (rcvd.code if rcvd is not None else DROPPED), None
        if first["type"] == "connection.established":
            await recv_until(ws, lambda m: m["type"] == "trip.snapshot")
            self.ws = ws
            return None, None
        code, _ = await closed_with(ws)
        return code, first.get("error", {}).get("details", {}).get("retry_after")


async def test_a_storm_beyond_capacity_ends_with_everyone_connected_and_members_served(gated, crew):
    alice, bob, _, trip, path = crew
    storming = 120  # LIMIT (4) open at once: thirty times the capacity

    @sync_to_async
    def members(count: int) -> list[str]:
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"storm-{i}") for i in range(count)
        )
        TripMember.objects.bulk_create(
            TripMember(trip=trip, user=user, role="viewer") for user in users
        )
        return [factories.access_token(user) for user in users]

    tokens = await members(storming)
    refusals_before = await metric(gated, REFUSALS, limit="overloaded")

    watcher, _ = await connect(gated.ws_url, path, factories.access_token(alice))
    editor, editor_established = await connect(gated.ws_url, path, factories.access_token(bob))
    version = editor.snapshot["trip"]["field_versions"]["notes"]
    assert editor_established["type"] == "connection.established"

    # Everything the watcher receives, pings answered, until told to stop.
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        try:
            while True:
                message = json.loads(await watcher.recv())
                if message["type"] == "ping":
                    await send_json(watcher, {"type": "pong", "request_id": message["id"]})
                seen.append(message)
        except ConnectionClosed:
            pass

    watching = asyncio.create_task(watch())

    clients = [StormClient(token, ReconnectPolicy(base=0.05)) for token in tokens]
    storm = asyncio.gather(*(client.run(gated.ws_url, path) for client in clients))

    # Edits one after another (each after its ack, ten a second at most: every edit goes to every
    # connected client of this process) for as long as the storm lasts.
    acked: list[int] = []
    while not storm.done() or len(acked) < 3:
        update_id = str(uuid.uuid4())
        await send_json(
            editor,
            {
                "type": "trip.update",
                "id": update_id,
                "update_id": update_id,
                "field": "notes",
                "value": f"during the storm {len(acked)}",
                "base_version": version,
            },
        )
        ack = await recv_until(editor, lambda m, u=update_id: m.get("request_id") == u, 30)
        assert ack["type"] == "ack" and ack["status"] == "applied", ack
        acked.append(ack["seq"])
        version = ack["version"]
        await asyncio.sleep(0.1)
    await storm  # raises if a client failed other than by a refusal or a dropped connection

    # Every storming client is connected, and the gate was exercised.
    assert all(client.ws is not None for client in clients)
    refusals = sum((client.refusals for client in clients), Counter())
    assert set(refusals) <= {CloseCode.TRY_AGAIN_LATER, DROPPED}, refusals
    assert refusals[CloseCode.TRY_AGAIN_LATER] > 0
    after = await metric(gated, REFUSALS, limit="overloaded")
    assert after - refusals_before >= refusals[CloseCode.TRY_AGAIN_LATER]
    await opening_becomes(gated, 0)

    # The member connected before the storm got every edit made during it, in seq order.
    async def received_all() -> list[int]:
        for _ in range(200):
            got = [m["seq"] for m in seen if m["type"] == "trip.updated"]
            if len(got) >= len(acked):
                return got
            await asyncio.sleep(0.05)
        return [m["seq"] for m in seen if m["type"] == "trip.updated"]

    assert await received_all() == acked
    assert acked == sorted(acked)

    watching.cancel()
    sockets = [watcher, editor] + [client.ws for client in clients if client.ws is not None]
    await asyncio.gather(*(ws.close() for ws in sockets))
