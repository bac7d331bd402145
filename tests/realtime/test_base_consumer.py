"""The base consumer: bad frames, heartbeat, server faults. Over the network where it matters."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

import protocol
from protocol import ConnectionType
from realtime.auth import JWTAuthMiddleware
from realtime.consumers.base import RealtimeConsumer
from tests import factories
from tests.wsclient import closed_with, connect, recv_json, recv_type, send_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trip_socket_path(live):
    alice = factories.make_user("alice")
    trip = factories.make_trip(alice)
    return f"/ws/trips/{trip.pk}/", factories.access_token(alice)


BAD_FRAMES = [
    (b"\x00\x01binary", "INVALID_MESSAGE_FORMAT", "binary_frame", None),
    ("not json at all", "INVALID_MESSAGE_FORMAT", "invalid_json", None),
    ("[1, 2, 3]", "INVALID_MESSAGE_FORMAT", "not_an_object", None),
    (json.dumps({"id": "m-1", "data": 1}), "INVALID_MESSAGE_FORMAT", "missing_type", "m-1"),
    (
        json.dumps({"id": "m-2", "type": "teleport"}),
        "INVALID_MESSAGE_FORMAT",
        "unknown_type",
        "m-2",
    ),
    (
        json.dumps({"id": "m-3", "type": "auth.refresh"}),
        "INVALID_MESSAGE_FORMAT",
        "invalid_fields",
        "m-3",
    ),
    (
        json.dumps({"id": "m-4", "type": "echo", "data": 1, "surprise": True}),
        "INVALID_MESSAGE_FORMAT",
        "invalid_fields",
        "m-4",
    ),
    (json.dumps({"id": 7, "type": "ping"}), "INVALID_MESSAGE_FORMAT", "invalid_fields", None),
]


@pytest.mark.parametrize(
    ("frame", "code", "reason", "request_id"),
    BAD_FRAMES,
    ids=[
        "binary",
        "not-json",
        "json-array",
        "missing-type",
        "unknown-type",
        "missing-field",
        "extra-field",
        "id-not-string",
    ],
)
async def test_bad_frame_gets_precise_error_and_socket_stays_open(
    live, trip_socket_path, frame, code, reason, request_id
):
    path, token = trip_socket_path
    ws, _ = await connect(live.ws_url, path, token)
    await ws.send(frame)
    error = await recv_json(ws)
    assert error["type"] == "error"
    assert error["error"]["code"] == code
    assert error["error"]["details"]["reason"] == reason
    assert error["request_id"] == request_id
    await send_json(ws, {"type": "echo", "id": "after", "data": "alive"})
    assert (await recv_type(ws, "echo"))["request_id"] == "after"
    await ws.close()


async def test_missing_field_error_names_the_field(live, trip_socket_path):
    path, token = trip_socket_path
    ws, _ = await connect(live.ws_url, path, token)
    await send_json(ws, {"type": "auth.refresh", "id": "r"})
    error = await recv_json(ws)
    assert error["error"]["details"]["field"] == "token"
    await ws.close()


async def test_oversize_message_gets_message_too_large_and_socket_stays_open(
    live, trip_socket_path
):
    path, token = trip_socket_path
    ws, established = await connect(live.ws_url, path, token)
    limit = established["limits"]["max_message_bytes"]
    await send_json(ws, {"type": "echo", "id": "big", "data": "x" * limit})
    error = await recv_json(ws)
    assert error["error"]["code"] == "MESSAGE_TOO_LARGE"
    assert error["error"]["details"]["max_bytes"] == limit
    assert error["error"]["details"]["size"] > limit
    await send_json(ws, {"type": "echo", "id": "small", "data": "x" * 1000})
    assert (await recv_type(ws, "echo"))["request_id"] == "small"
    await ws.close()


async def test_client_ping_gets_pong_with_request_id(live, trip_socket_path):
    path, token = trip_socket_path
    ws, _ = await connect(live.ws_url, path, token)
    await send_json(ws, {"type": "ping", "id": "hb-1"})
    pong = await recv_json(ws)
    assert pong["type"] == "pong" and pong["request_id"] == "hb-1"
    await ws.close()


async def test_idle_socket_on_redis_layer_stays_open_for_20_seconds(live, trip_socket_path):
    """redis-py 8 with channels_redis 4.3.0 closed idle sockets with 1011 every ~5 s."""
    path, token = trip_socket_path
    ws, _ = await connect(live.ws_url, path, token)
    await asyncio.sleep(20)
    assert ws.close_code is None
    await send_json(ws, {"type": "echo", "id": "late", "data": "still here"})
    assert (await recv_type(ws, "echo"))["data"] == "still here"
    await ws.close()


async def test_server_pings_and_pongs_are_measured(fast_server, transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    token = await sync_to_async(factories.access_token)(alice)
    ws, established = await connect(fast_server.ws_url, f"/ws/trips/{trip.pk}/", token)
    assert established["heartbeat_interval"] == 0.5
    for _ in range(3):
        ping = await recv_json(ws)
        assert ping["type"] == "ping" and ping["id"]
        await send_json(ws, {"type": "pong", "request_id": ping["id"]})
    await ws.close()
    pongs = await asyncio.to_thread(
        fast_server.metric,
        "tripsage_ws_heartbeat_latency_seconds_count",
        connection_type="trip_collaboration",
    )
    assert pongs >= 3


async def test_silent_client_is_closed_with_heartbeat_timeout(fast_server, transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    token = await sync_to_async(factories.access_token)(alice, lifetime_seconds=300)
    ws, established = await connect(fast_server.ws_url, f"/ws/trips/{trip.pk}/", token)
    assert established["limits"]["heartbeat_timeout_seconds"] == 4
    code, messages = await closed_with(ws, timeout=8)
    assert code == 4008
    assert messages[-1]["error"]["code"] == "NETWORK_ERROR"
    assert messages[-1]["error"]["details"]["reason"] == "heartbeat_timeout"
    assert [m["type"] for m in messages[:-1]] == ["ping"] * (len(messages) - 1)


class _Faulty(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION
    client_messages = (protocol.Echo,)

    async def on_echo(self, message: protocol.Echo) -> None:
        raise RuntimeError("a bug of ours")


async def test_handler_fault_gets_server_error_and_socket_stays_open(transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    token = await sync_to_async(factories.access_token)(alice)
    app = JWTAuthMiddleware(URLRouter([path("ws/faulty/", _Faulty.as_asgi())]))
    communicator = WebsocketCommunicator(app, "/ws/faulty/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"token": token})
    assert (await communicator.receive_json_from())["type"] == "connection.established"
    assert (await communicator.receive_json_from())["type"] == "rate_limit_status"
    await communicator.send_json_to({"type": "echo", "id": "boom", "data": 1})
    error = await communicator.receive_json_from()
    assert error["error"]["code"] == "SERVER_ERROR"
    assert error["error"]["details"]["retryable"] is True
    assert error["request_id"] == "boom"
    await communicator.send_json_to({"type": "ping", "id": "after"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


class _BrokenOpen(RealtimeConsumer):
    connection_type = ConnectionType.TRIP_COLLABORATION

    async def on_connected(self) -> None:
        raise RuntimeError("Redis went away mid-connect")


async def test_a_fault_while_opening_says_server_error_instead_of_dropping(transactional_db):
    alice = await sync_to_async(factories.make_user)("alice")
    token = await sync_to_async(factories.access_token)(alice)
    app = JWTAuthMiddleware(URLRouter([path("ws/broken/", _BrokenOpen.as_asgi())]))
    communicator = WebsocketCommunicator(app, "/ws/broken/")
    await communicator.connect()
    await communicator.send_json_to({"token": token, "id": "a"})
    assert (await communicator.receive_json_from())["type"] == "connection.established"
    assert (await communicator.receive_json_from())["type"] == "rate_limit_status"
    error = await communicator.receive_json_from()
    assert error["error"]["code"] == "SERVER_ERROR"
    assert error["error"]["details"]["retryable"] is True and error["request_id"] == "a"
    assert (await communicator.receive_output())["code"] == 1011
