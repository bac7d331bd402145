"""The base consumer: bad frames, heartbeat, server faults. Over the network where it matters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.urls import path

import protocol
from metrics import instruments
from metrics.collector import collector
from protocol import CloseCode, ConnectionType
from realtime.auth import JWTAuthMiddleware
from realtime.connections import connections
from realtime.consumers.base import RealtimeConsumer
from realtime.consumers.trips import TripConsumer
from realtime.presence import tracker
from realtime.routing import websocket_urlpatterns
from realtime.throttling import throttle
from realtime.timers import ticker
from tests import factories
from tests.wsclient import (
    closed_with,
    connect,
    open_socket,
    recv_json,
    recv_type,
    recv_until,
    send_json,
)
from tripsage.routing import URLRouter

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
    assert (await communicator.receive_output())["code"] == CloseCode.SERVER_FAULT


# -- a frame the server would echo back, with text that is no Unicode --------------------------
# `"\ud800"` is valid JSON but a lone surrogate: no UTF-8 can carry it back to the client.

SURROGATE_FRAMES = [
    ('{"type":"ping","id":"\\ud800"}', "id", None),
    ('{"type":"pong","id":"p-1","request_id":"\\udfff"}', "request_id", "p-1"),
    ('{"type":"echo","id":"e-1","data":{"list":["ok","\\ud800"]}}', "data", "e-1"),
    ('{"type":"echo","id":"e-2","data":{"\\ud800":1}}', "data", "e-2"),
    ('{"type":"echo","id":"e-3","data":1,"\\ud800":1}', "\ufffd", "e-3"),
    ('{"type":"\\ud800","id":"t-1"}', "type", "t-1"),
]


async def _open_sockets(server, connection_type):
    return await asyncio.to_thread(
        server.metric, "tripsage_ws_connections_open", connection_type=connection_type
    )


async def _only_socket_left(server, path, token):
    """A fresh socket sees its own user once in presence, and this process counts it alone:
    nothing the earlier sockets held is left behind."""
    ws, _ = await connect(server.ws_url, path, token)

    def sockets_per_user(message: dict) -> list[tuple[str, int]]:
        return [(c["user"]["username"], c["connections"]) for c in message["collaborators"]]

    if sockets_per_user(ws.snapshot) != [("alice", 1)]:
        # A socket closed just now may still be leaving presence as this one opens: its leave
        # reaches every member, this one too. A ghost never leaves, and this times out.
        await recv_until(
            ws,
            lambda m: m["type"] == "presence.update" and sockets_per_user(m) == [("alice", 1)],
            10,
        )
    for _ in range(200):  # a socket closed just now may still be on its way out
        if await _open_sockets(server, "trip_collaboration") == 1:
            break
        await asyncio.sleep(0.05)
    assert await _open_sockets(server, "trip_collaboration") == 1
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "field", "request_id"),
    SURROGATE_FRAMES,
    ids=["id", "pong-request-id", "echo-data", "echo-data-key", "field-name", "type"],
)
async def test_text_that_is_no_unicode_gets_invalid_text_and_leaves_no_ghost(
    live, trip_socket_path, frame, field, request_id
):
    path, token = trip_socket_path
    log_from = len(live.log())
    ws, _ = await connect(live.ws_url, path, token)
    await ws.send(frame)
    error = await recv_json(ws)
    assert error["type"] == "error", error
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert error["error"]["details"]["reason"] == "invalid_text"
    assert error["error"]["details"]["field"] == field
    assert error["request_id"] == request_id
    await send_json(ws, {"type": "echo", "id": "after", "data": "alive"})
    assert (await recv_type(ws, "echo"))["request_id"] == "after"
    await ws.close()
    await _only_socket_left(live, path, token)
    assert "Traceback" not in live.log()[log_from:]


DEEP_FRAMES = [
    ("[" * 30000, None),
    ('{"type":"echo","id":"deep","data":' + "[" * 40 + "]" * 40 + "}", "deep"),
    ('{"type":"echo","id":"deep-obj","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}", "deep-obj"),
]


@pytest.mark.parametrize(("frame", "request_id"), DEEP_FRAMES, ids=["30000", "41", "41-objects"])
async def test_too_deep_json_gets_too_deep_and_socket_stays_open(
    live, trip_socket_path, frame, request_id
):
    path, token = trip_socket_path
    log_from = len(live.log())
    ws, _ = await connect(live.ws_url, path, token)
    await ws.send(frame)
    error = await recv_json(ws)
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT", error
    assert error["error"]["details"] == {"reason": "too_deep", "max_depth": 32}
    assert error["request_id"] == request_id
    nested = {"type": "echo", "id": "ok", "data": json.loads("[" * 31 + "]" * 31)}
    await send_json(ws, nested)  # 32 levels, the message itself included
    assert (await recv_type(ws, "echo"))["request_id"] == "ok"
    await ws.close()
    assert "Traceback" not in live.log()[log_from:]


NUMBER_FRAMES = [
    ('{"type":"echo","id":"n-1","data":1' + "0" * 5000 + "}", "number_out_of_range"),
    ('{"type":"echo","id":"n-2","data":-1e400}', "number_out_of_range"),
    ('{"type":"echo","id":"n-3","data":NaN}', "invalid_json"),
    ('{"type":"echo","id":"n-4","data":[Infinity]}', "invalid_json"),
]


@pytest.mark.parametrize(
    ("frame", "reason"), NUMBER_FRAMES, ids=["5001-digits", "1e400", "NaN", "Infinity"]
)
async def test_numbers_json_cannot_carry_back_are_refused(live, trip_socket_path, frame, reason):
    path, token = trip_socket_path
    ws, _ = await connect(live.ws_url, path, token)
    await ws.send(frame)
    error = await recv_json(ws)
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT", error
    assert error["error"]["details"]["reason"] == reason
    await ws.close()


# -- whatever ends a socket, what it held is released ------------------------------------------


def _held(connection_id: str, trip_id: int) -> dict[str, bool]:
    """What a trip socket holds in this process: presence, the live-socket registry, its ticker
    entry, its metrics row and its connection lease."""
    return {
        "presence": connection_id in tracker().local.get(trip_id, {}),
        "registry": connections().find(connection_id) is not None,
        "ticker": any(m.connection_id == connection_id for m in ticker().members),
        "metrics": connection_id in collector().sockets,
        "lease": connection_id in throttle().leased,
    }


def _open_gauge() -> float:
    return instruments.CONNECTIONS_OPEN.labels("trip_collaboration")._value.get()


async def _trip_socket(trip, user):
    communicator = WebsocketCommunicator(
        JWTAuthMiddleware(URLRouter(websocket_urlpatterns)), f"/ws/trips/{trip.pk}/"
    )
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"token": await sync_to_async(factories.access_token)(user)})
    established = await communicator.receive_json_from(5)
    assert established["type"] == "connection.established"
    assert (await communicator.receive_json_from(5))["type"] == "rate_limit_status"
    assert (await communicator.receive_json_from(5))["type"] == "trip.snapshot"
    connection_id = established["connection_id"]
    assert all(_held(connection_id, trip.pk).values())
    return communicator, connection_id


async def _collaborators(trip_id: int) -> list:
    return (await tracker().current(trip_id)).presence_fields()["collaborators"]


async def test_a_fault_that_escapes_the_handlers_closes_with_server_fault_and_releases_all(
    transactional_db, database_thread, monkeypatch
):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    gauge = _open_gauge()
    communicator, connection_id = await _trip_socket(trip, alice)
    assert _open_gauge() == gauge + 1

    async def broken(self, error):
        raise RuntimeError("the error path itself failed")

    # A bad frame, and then the error path fails too (as encoding an unencodable id did).
    monkeypatch.setattr(TripConsumer, "send_error", broken)
    await communicator.send_to(text_data="not json")
    error = await communicator.receive_json_from(5)
    assert error["error"]["code"] == "SERVER_ERROR"
    assert error["error"]["details"]["retryable"] is True
    assert (await communicator.receive_output(5)) == {
        "type": "websocket.close",
        "code": CloseCode.SERVER_FAULT,
    }
    await communicator.wait(5)  # the application ended, without raising
    assert _held(connection_id, trip.pk) == dict.fromkeys(_held(connection_id, trip.pk), False)
    assert _open_gauge() == gauge
    assert await _collaborators(trip.pk) == []


async def test_a_fault_while_cleaning_up_skips_none_of_the_rest(
    transactional_db, database_thread, monkeypatch
):
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    gauge = _open_gauge()
    communicator, connection_id = await _trip_socket(trip, alice)

    async def redis_away(group, channel):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(get_channel_layer(), "group_discard", redis_away)
    await communicator.disconnect(5)
    assert _held(connection_id, trip.pk) == dict.fromkeys(_held(connection_id, trip.pk), False)
    assert _open_gauge() == gauge
    assert await _collaborators(trip.pk) == []


async def test_a_cancelled_socket_releases_all(transactional_db, database_thread):
    """daphne cancels an application that outlives its close timeout, and every one at
    shutdown: Channels then never calls websocket_disconnect."""
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    gauge = _open_gauge()
    communicator, connection_id = await _trip_socket(trip, alice)
    communicator.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.future
    assert _held(connection_id, trip.pk) == dict.fromkeys(_held(connection_id, trip.pk), False)
    assert _open_gauge() == gauge
    assert await _collaborators(trip.pk) == []


async def test_a_client_that_leaves_while_its_socket_opens_leaves_nothing_behind(
    live, trip_socket_path
):
    """Its opening frames meet a closed connection: no fault of anyone's, nothing logged."""
    path, token = trip_socket_path
    log_from = len(live.log())
    for _ in range(10):
        ws = await open_socket(live.ws_url, path)
        await send_json(ws, {"token": token})
        await recv_json(ws)  # connection.established: the rest is still being sent
        await ws.close()
    await _only_socket_left(live, path, token)
    assert "Traceback" not in live.log()[log_from:]


@pytest.mark.parametrize(
    "url", ["/ws/trips/{trip}/", "/ws/chat/{trip}/", "/ws/notifications/", "/ws/agent-status/"]
)
async def test_every_attribute_a_consumer_sets_is_declared_for_the_shared_keys(
    transactional_db, database_thread, url
):
    """Each connection type's `instance_attributes` (with RealtimeConsumer's) name everything its
    sockets set on themselves, open and after release: an undeclared one would give every socket
    a dict of its own again (bench S3). And they fit CPython's shared table (30)."""
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    communicator = WebsocketCommunicator(
        JWTAuthMiddleware(URLRouter(websocket_urlpatterns)), url.format(trip=trip.pk)
    )
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"token": await sync_to_async(factories.access_token)(alice)})
    established = await communicator.receive_json_from(5)
    assert established["type"] == "connection.established"
    consumer = connections().find(established["connection_id"])
    # Handlers run one at a time: the pong comes after the opening's last step.
    await communicator.send_json_to({"type": "ping", "id": "after-open"})
    while (await communicator.receive_json_from(5)).get("request_id") != "after-open":
        pass
    declared = set(type(consumer)._all_instance_attributes)
    assert len(declared) <= 30
    assert set(vars(consumer)) <= declared, set(vars(consumer)) - declared
    await communicator.disconnect(5)
    assert consumer._released
    assert set(vars(consumer)) <= declared, set(vars(consumer)) - declared


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="CPython 3.11's shared-key dicts")
def test_a_consumer_made_after_a_storm_of_others_still_shares_its_keys():
    """The first instance of a class teaches the shared table its names: one made after 50 others
    (a connect storm) keeps its attributes in the table, and its dict is as small as the first's;
    a class that skipped that step gives such an instance a dict of its own."""

    class Taught(TripConsumer):
        pass

    class Untaught(TripConsumer):
        pass

    def last_of_a_storm(cls: type[TripConsumer]) -> int:
        consumers = [cls() for _ in range(50)]
        for consumer in (consumers[0], consumers[-1]):
            for name in cls._all_instance_attributes:
                setattr(consumer, name, 1)
        return sys.getsizeof(vars(consumers[-1]))

    Untaught._attributes_shared = True  # as if taught already, with nothing taught
    assert last_of_a_storm(Taught) < last_of_a_storm(Untaught)


DAPHNE_MAX_FRAME_BYTES = 1024 * 1024  # daphne's --websocket-max-frame-size and -message-size


def _echo_frame_of(size: int, request_id: str) -> str:
    """A valid `echo` text frame of exactly `size` UTF-8 bytes."""
    frame = json.dumps({"type": "echo", "id": request_id, "data": ""})
    return frame[:-2] + "x" * (size - len(frame)) + frame[-2:]


async def test_a_frame_over_daphnes_limit_closes_that_socket_with_1009_and_no_other(
    live, trip_socket_path
):
    """Up to daphne's 1 MiB, our own 64 KiB rule answers (MESSAGE_TOO_LARGE, the socket stays
    open); one byte more and daphne ends that socket with 1009 before our code sees the frame.
    The process goes on serving its other sockets, the closed one leaves nothing behind."""
    path, token = trip_socket_path
    log_from = len(live.log())
    bystander, _ = await connect(live.ws_url, path, token)
    sender, _ = await connect(live.ws_url, path, token)
    await recv_until(bystander, lambda m: m["type"] == "presence.update")

    await sender.send(_echo_frame_of(DAPHNE_MAX_FRAME_BYTES, "at-limit"))
    error = await recv_type(sender, "error")
    assert error["error"]["code"] == "MESSAGE_TOO_LARGE" and error["request_id"] is None
    assert error["error"]["details"] == {"size": DAPHNE_MAX_FRAME_BYTES, "max_bytes": 65536}
    await send_json(sender, {"type": "echo", "id": "still-open", "data": 1})
    assert (await recv_type(sender, "echo"))["request_id"] == "still-open"

    await sender.send(_echo_frame_of(DAPHNE_MAX_FRAME_BYTES + 1, "over"))
    code, messages = await closed_with(sender)
    assert code == 1009, (code, sender.close_reason)
    assert [m for m in messages if m["type"] not in ("ping", "presence.update")] == []

    # The others on the process see the socket leave and keep working.
    left = await recv_until(
        bystander, lambda m: m["type"] == "presence.update" and collaborator_sockets(m) == 1
    )
    assert left["collaborator_count"] == 1
    await send_json(bystander, {"type": "echo", "id": "bystander", "data": "alive"})
    assert (await recv_type(bystander, "echo"))["request_id"] == "bystander"
    await bystander.close()
    await _only_socket_left(live, path, token)
    assert "Traceback" not in live.log()[log_from:]


def collaborator_sockets(message: dict) -> int:
    return sum(c["connections"] for c in message["collaborators"])
