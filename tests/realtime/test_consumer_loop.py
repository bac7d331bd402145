"""The consumer loop (realtime.consumer_loop): one task per idle socket, Channels' one handler at a
time, and a fault in a channel message's handler ending the socket as in Channels. In one
process with WebsocketCommunicators, on our fan-out layer and on Channels' in-memory layer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.urls import path

import protocol
from protocol import CloseCode, ConnectionType
from realtime import presence
from realtime.auth import JWTAuthMiddleware
from realtime.connections import connections
from realtime.consumer_loop import Turn
from realtime.consumers.base import RealtimeConsumer
from realtime.layers import FanoutChannelLayer
from realtime.routing import websocket_urlpatterns
from tests import factories
from tripsage.routing import URLRouter

TIMEOUT = 10.0
db = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["fanout", "in-memory"])
def layer(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Our layer (the test settings'), or Channels' in-memory layer, for this test."""
    if request.param == "in-memory":
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        settings.REDIS_URL = None  # as the settings choose it: no Redis, presence in memory
        monkeypatch.setattr(presence, "_tracker", None)
    found = get_channel_layer()
    assert isinstance(found, FanoutChannelLayer) == (request.param == "fanout")
    return found


class _Gated(RealtimeConsumer):
    """An echo that waits for `gate`, and a channel message type `probe.message`."""

    connection_type = ConnectionType.TRIP_COLLABORATION
    client_messages = (protocol.Echo,)
    started: asyncio.Event
    gate: asyncio.Event
    seen: list[str]

    async def on_echo(self, message: protocol.Echo) -> None:
        _Gated.seen.append("echo started")
        _Gated.started.set()
        await _Gated.gate.wait()
        _Gated.seen.append("echo done")
        await self.send_event(protocol.server_message("echo", request_id=message.id, data=None))

    async def probe_message(self, event: dict[str, Any]) -> None:
        _Gated.seen.append("probe")
        await self.send_event(protocol.server_message("echo", request_id="probe", data=None))


@pytest.fixture
def gated() -> Iterator[type[_Gated]]:
    _Gated.started = asyncio.Event()
    _Gated.gate = asyncio.Event()
    _Gated.seen = []
    yield _Gated
    _Gated.gate.set()


async def _open(app: Any, url: str, user: Any) -> tuple[WebsocketCommunicator, Any]:
    """An authenticated socket, its opening frames read; and its consumer."""
    communicator = WebsocketCommunicator(app, url)
    assert (await communicator.connect(TIMEOUT))[0]
    await communicator.send_json_to({"token": await sync_to_async(factories.access_token)(user)})
    established = await communicator.receive_json_from(TIMEOUT)
    assert established["type"] == "connection.established"
    assert (await communicator.receive_json_from(TIMEOUT))["type"] == "rate_limit_status"
    return communicator, connections().find(established["connection_id"])


@db
async def test_an_idle_trip_socket_holds_no_task_but_its_own(layer: Any) -> None:
    """Channels' loop held three tasks per socket (the socket's, one awaiting the server and one
    awaiting the channel layer). On our layer the socket's own is the only one, also after
    messages came through the layer; another layer needs one more, awaiting it."""
    per_socket = 1 if isinstance(layer, FanoutChannelLayer) else 2
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    app = JWTAuthMiddleware(URLRouter(websocket_urlpatterns))
    url = f"/ws/trips/{trip.pk}/"
    first, _ = await _open(app, url, alice)  # starts the process's own tasks (ticker, ...)
    assert (await first.receive_json_from(TIMEOUT))["type"] == "trip.snapshot"
    await asyncio.sleep(1.0)  # presence settles
    before = len(asyncio.all_tasks())
    sockets = []
    for _ in range(3):
        communicator, _ = await _open(app, url, alice)
        assert (await communicator.receive_json_from(TIMEOUT))["type"] == "trip.snapshot"
        sockets.append(communicator)
    # Each join changes the trip's presence, which reaches every socket through the layer.
    async with asyncio.timeout(TIMEOUT):
        while (await first.receive_json_from(TIMEOUT))["type"] != "presence.update":
            pass
    for _ in range(50):
        if len(asyncio.all_tasks()) == before + 3 * per_socket:
            break
        await asyncio.sleep(0.1)
    # The communicators' application tasks (and, on another layer, those awaiting it).
    assert len(asyncio.all_tasks()) == before + 3 * per_socket
    for communicator in [first, *sockets]:
        await communicator.disconnect(TIMEOUT)


@db
async def test_a_channel_message_waits_for_the_handler_in_progress(
    layer: Any, gated: type[_Gated]
) -> None:
    alice = await sync_to_async(factories.make_user)("alice")
    app = JWTAuthMiddleware(URLRouter([path("ws/gated/", gated.as_asgi())]))
    communicator, consumer = await _open(app, "/ws/gated/", alice)
    await communicator.send_json_to({"type": "echo", "id": "e-1", "data": None})
    await asyncio.wait_for(gated.started.wait(), TIMEOUT)
    await layer.send(consumer.channel_name, {"type": "probe.message"})
    await asyncio.sleep(0.2)  # room for a wrongly concurrent handler to start
    assert gated.seen == ["echo started"]
    gated.gate.set()
    replies = [await communicator.receive_json_from(TIMEOUT) for _ in range(2)]
    assert [reply["request_id"] for reply in replies] == ["e-1", "probe"]
    assert gated.seen == ["echo started", "echo done", "probe"]
    # And the next client message is served after the channel message.
    await communicator.send_json_to({"type": "ping", "id": "after"})
    assert (await communicator.receive_json_from(TIMEOUT))["request_id"] == "after"
    await communicator.disconnect(TIMEOUT)


@db
async def test_a_channel_message_no_handler_takes_ends_the_socket_with_server_fault(
    layer: Any, gated: type[_Gated]
) -> None:
    """As in Channels, the fault ends the socket; here it says so (SERVER_ERROR, 4011) and the
    socket's holdings are released."""
    alice = await sync_to_async(factories.make_user)("alice")
    app = JWTAuthMiddleware(URLRouter([path("ws/gated/", gated.as_asgi())]))
    communicator, consumer = await _open(app, "/ws/gated/", alice)
    await layer.send(consumer.channel_name, {"type": "no.such.handler"})
    error = await communicator.receive_json_from(TIMEOUT)
    assert error["error"]["code"] == "SERVER_ERROR"
    assert (await communicator.receive_output(TIMEOUT)) == {
        "type": "websocket.close",
        "code": CloseCode.SERVER_FAULT,
    }
    await communicator.wait(TIMEOUT)  # the application ended, without raising
    assert connections().find(consumer.connection_id) is None


# -- Turn: asyncio.Lock's behaviour ---------------------------------------------------------------


async def test_turns_are_taken_one_at_a_time_in_the_order_asked() -> None:
    turn = Turn()
    order: list[str] = []

    async def take(name: str) -> None:
        async with turn:
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(*(take(name) for name in "abc"))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert not turn.held and turn.waiting is None


async def test_a_waiter_cancelled_before_or_after_its_turn_came_holds_nobody_up() -> None:
    turn = Turn()
    order: list[str] = []

    async def take(name: str) -> None:
        async with turn:
            order.append(name)

    await turn.__aenter__()  # held
    waiting = [asyncio.create_task(take(name)) for name in "abc"]
    await asyncio.sleep(0)  # all three wait
    waiting[0].cancel()  # before its turn came
    await turn.__aexit__()  # the turn goes to b (a's waiter is cancelled)
    waiting[1].cancel()  # b was handed the turn and is cancelled before it runs
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["CancelledError", "CancelledError", "NoneType"]
    assert order == ["c"]
    assert not turn.held and turn.waiting is None
