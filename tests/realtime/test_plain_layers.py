"""Plain Channels layers through the same code path as ours: the trip and chat sockets end to end
over Channels' in-memory layer and channels_redis's two layers (WebsocketCommunicators in one
process, CHANNEL_LAYERS overridden), and events.fanout's accessor for the layer's extras."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from collaboration.services import trips
from events import broadcast
from events.fanout import Fanout, PlainFanout, fanout
from realtime import presence
from realtime.auth import JWTAuthMiddleware
from realtime.layers import FanoutChannelLayer
from realtime.routing import websocket_urlpatterns
from tests import factories
from tests.conftest import require_redis_url
from tripsage.routing import URLRouter

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10.0
APPLICATION = JWTAuthMiddleware(URLRouter(websocket_urlpatterns))  # tripsage.asgi's websocket


def _redis(backend: str) -> Callable[[str, str], dict[str, Any]]:
    return lambda url, prefix: {
        "BACKEND": backend,
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": None}], "prefix": prefix},
    }


PLAIN_LAYERS = {
    "in-memory": lambda url, prefix: {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    "redis-core": _redis("channels_redis.core.RedisChannelLayer"),
    "redis-pubsub": _redis("channels_redis.pubsub.RedisPubSubChannelLayer"),
}


@pytest.fixture(params=list(PLAIN_LAYERS))
def plain_layer(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The configured channel layer, for this test only: a plain Channels layer."""
    prefix = f"plain{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {"default": PLAIN_LAYERS[request.param](require_redis_url(), prefix)}
    if request.param == "in-memory":
        settings.REDIS_URL = None  # as the settings choose it: no Redis, presence in memory
    monkeypatch.setattr(presence, "_tracker", None)  # presence made afresh for these settings
    layer = get_channel_layer()  # Channels forgets its layers when CHANNEL_LAYERS changes
    assert not isinstance(layer, Fanout)
    yield layer
    # What the Redis layers and presence left under this test's prefix (the layer's own flush
    # would close connections its consumers' tasks are still reading from).
    client = redis.Redis.from_url(require_redis_url())
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def crew(transactional_db: None) -> tuple[Any, Any, Any, Any]:
    return factories.make_crew()


class Member:
    """One socket through the project's ASGI routes, read the way a client reads it."""

    def __init__(self, path: str) -> None:
        self.communicator = WebsocketCommunicator(APPLICATION, path)
        self.opening: dict[str, Any] = {}
        self.log: list[dict[str, Any]] = []  # every message after the opening, in order

    async def join(self, user: Any) -> Member:
        connected, _ = await self.communicator.connect(TIMEOUT)
        assert connected
        token = await sync_to_async(factories.access_token)(user)
        await self.communicator.send_json_to({"token": token, "id": "auth"})
        for expected in ("connection.established", "rate_limit_status"):
            assert (await self.receive())["type"] == expected
        self.opening = await self.receive()
        self.log.clear()
        return self

    async def receive(self) -> dict[str, Any]:
        message = await self.communicator.receive_json_from(TIMEOUT)
        if message["type"] == "ping":  # flow control or heartbeat: answered as clients do
            await self.send({"type": "pong", "request_id": message["id"]})
            return await self.receive()
        self.log.append(message)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.communicator.send_json_to(message)

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = await self.receive()
                if predicate(message):
                    return message

    async def updates_through(self, seq: int) -> list[tuple[Any, ...]]:
        """(seq, field, value, by) of every `trip.updated` this socket got, once the one with
        `seq` came and an echo sent then was answered: what the layer had queued for this
        socket by then came before the answer."""
        if not any(m["seq"] == seq for m in self.logged("trip.updated")):
            await self.until(lambda m: m["type"] == "trip.updated" and m["seq"] == seq)
        await self.send({"type": "echo", "id": "fence", "data": None})
        await self.until(lambda m: m.get("request_id") == "fence")
        return [
            (m["seq"], m["field"], m["value"], m["by"]["username"])
            for m in self.logged("trip.updated")
        ]

    def logged(self, type_: str) -> list[dict[str, Any]]:
        return [message for message in self.log if message["type"] == type_]

    async def leave(self) -> None:
        await self.communicator.disconnect()


def update_msg(field: str, value: str, base_version: int, id_: str) -> dict[str, Any]:
    return {
        "type": "trip.update",
        "id": id_,
        "update_id": str(uuid.uuid4()),
        "field": field,
        "value": value,
        "base_version": base_version,
    }


def gap_fills() -> float:
    labels = {"connection_type": "trip_collaboration", "kind": "gap_fill"}
    return REGISTRY.get_sample_value("tripsage_ws_replays_total", labels) or 0.0


async def test_two_members_edit_and_see_each_change_in_seq_order_with_presence(plain_layer, crew):
    alice, bob, _, trip = crew
    a = await Member(f"/ws/trips/{trip.pk}/").join(alice)
    b = await Member(f"/ws/trips/{trip.pk}/").join(bob)
    base = a.opening["seq"]
    assert b.opening["collaborator_count"] == 2
    shown = await a.until(lambda m: m["type"] == "presence.update")
    assert {c["user"]["username"] for c in shown["collaborators"]} == {"alice", "bob"}

    await a.send(update_msg("name", "European Adventure", 1, "save-name"))
    ack = await a.until(lambda m: m["type"] == "ack")
    assert (ack["request_id"], ack["status"], ack["seq"]) == ("save-name", "applied", base + 1)
    await b.send(update_msg("budget", "3500", ack["version"], "save-budget"))
    assert (await b.until(lambda m: m["type"] == "ack"))["seq"] == base + 2

    for member in (a, b):
        assert await member.updates_through(base + 2) == [
            (base + 1, "name", "European Adventure", "alice"),
            (base + 2, "budget", "3500", "bob"),
        ]
    answers = [(m["type"], m.get("seq")) for m in a.log if m["type"] in ("ack", "trip.updated")]
    assert answers[:2] == [("ack", base + 1), ("trip.updated", base + 1)]  # the ack comes first
    await a.leave()
    await b.leave()


async def test_an_event_the_layer_lost_is_filled_in_from_the_log(plain_layer, crew, monkeypatch):
    alice, bob, carol, trip = crew
    members = [await Member(f"/ws/trips/{trip.pk}/").join(user) for user in (bob, carol)]
    base = members[0].opening["seq"]
    sends: list[dict[str, Any]] = []
    real = broadcast._group_send
    monkeypatch.setattr(
        broadcast, "_group_send", lambda g, e: sends.append(e) if not sends else real(g, e)
    )  # the first event is lost on its way; the second goes through
    before = gap_fills()
    for i, value in enumerate(["lost", "delivered"]):
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes",
            value=value, base_version=1 + i,
        )  # fmt: skip
    for member in members:
        assert await member.updates_through(base + 2) == [
            (base + 1, "notes", "lost", "alice"),
            (base + 2, "notes", "delivered", "alice"),
        ]
    assert gap_fills() - before == 2  # read from the log, once per socket
    for member in members:
        await member.leave()


async def test_events_published_out_of_order_reach_each_member_once_in_order(
    plain_layer, crew, monkeypatch
):
    """A plain layer does not hold an early seq: each socket reads the missing one from the
    log, and drops it when it arrives late."""
    alice, bob, carol, trip = crew
    members = [await Member(f"/ws/trips/{trip.pk}/").join(user) for user in (bob, carol)]
    base = members[0].opening["seq"]
    held: list[tuple[str, dict[str, Any]]] = []
    with monkeypatch.context() as patch:  # commit both, publish neither yet
        patch.setattr(broadcast, "_group_send", lambda group, event: held.append((group, event)))
        for value in ("Porto", "Lisbon"):
            await sync_to_async(trips.trip_update)(
                trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="destination",
                value=value, base_version=1,
            )  # fmt: skip
    for group, event in reversed(held):
        await sync_to_async(broadcast._group_send)(group, event)
    for member in members:
        assert await member.updates_through(base + 2) == [
            (base + 1, "destination", "Porto", "alice"),
            (base + 2, "destination", "Lisbon", "alice"),
        ]
    for member in members:
        await member.leave()


async def test_chat_messages_reach_both_members_after_the_ack(plain_layer, crew):
    alice, bob, _, trip = crew
    a = await Member(f"/ws/chat/{trip.pk}/").join(alice)
    b = await Member(f"/ws/chat/{trip.pk}/").join(bob)
    base = a.opening["seq"]
    await a.send({"type": "chat.send", "id": "hi", "text": "Hello", "client_id": str(uuid.uuid4())})
    for member in (a, b):
        message = await member.until(lambda m: m["type"] == "chat.message")
        assert (message["seq"], message["message"]["text"]) == (base + 1, "Hello")
    assert [m["type"] for m in a.log] == ["ack", "chat.message"]
    assert a.log[0]["request_id"] == "hi" and a.log[0]["seq"] == base + 1
    await a.leave()
    await b.leave()


async def test_a_revoked_user_is_closed_through_the_process_wide_group(plain_layer, crew):
    _, bob, _, trip = crew
    b = await Member(f"/ws/trips/{trip.pk}/").join(bob)
    await sync_to_async(broadcast.revoke_user_sockets)(bob.pk)
    failed = await b.until(lambda m: m["type"] == "error")
    assert failed["error"]["code"] == "AUTHENTICATION_FAILED"
    assert (await b.communicator.receive_output(TIMEOUT))["code"] == 4001


# -- events.fanout: the one accessor for the layer's extras ---------------------------------------


def test_our_layer_is_its_own_fanout():
    layer = FanoutChannelLayer(hosts=[require_redis_url()], prefix="fanout-accessor")
    assert fanout(layer) is layer


async def test_a_plain_layer_gets_extras_that_do_nothing_and_a_working_publish(plain_layer):
    extras = fanout()  # the configured layer
    assert isinstance(extras, PlainFanout) and extras.layer is plain_layer
    assert fanout(plain_layer) is extras  # one adapter per layer
    assert not extras.observes_fanout  # consumers time their own sends
    channel = await plain_layer.new_channel()
    await plain_layer.group_add("plain-group", channel)
    taken: list[dict[str, Any]] = []
    extras.attach(channel, {"x": lambda message: taken.append(message) or True})
    extras.expect("plain-group", 5)
    # From synchronous code, as an on_commit callback publishes (events.broadcast).
    await sync_to_async(extras.publish_blocking)("plain-group", {"type": "x", "n": 1})
    message = await asyncio.wait_for(plain_layer.receive(channel), TIMEOUT)
    assert message["n"] == 1
    assert taken == []  # no direct delivery: the message came through the queue
    assert extras.dropped(channel) == 0
    extras.detach(channel)
    await plain_layer.group_discard("plain-group", channel)
