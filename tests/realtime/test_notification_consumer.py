"""Notifications over the network: every socket of the recipient on every process, nobody else."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from collaboration.services import notifications
from tests import factories
from tests.wsclient import connect, recv_type, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/notifications/"


@pytest.fixture
def crew(transactional_db):
    return factories.make_crew()


async def nothing_but_pong(ws, kind: str) -> None:
    """Send a ping and read up to its pong: no message of `kind` may come before it."""
    await send_json(ws, {"type": "ping", "id": "sentinel"})
    seen = await recv_until(ws, lambda m: m["type"] in (kind, "pong"))
    assert seen["type"] == "pong", seen


async def test_unread_on_connect_then_live_on_every_socket_of_the_recipient_only(pair, crew):
    a, b = pair
    alice, bob, *_ = crew
    # make_crew added bob and carol: each has one unread "added you" notification already.
    ws_bob_a, _ = await connect(a.ws_url, PATH, factories.access_token(bob))
    unread = ws_bob_a.opening
    assert unread["unread_count"] == 1
    assert [n["kind"] for n in unread["notifications"]] == ["member_added"]
    ws_bob_b, _ = await connect(b.ws_url, PATH, factories.access_token(bob))
    ws_alice_a, _ = await connect(a.ws_url, PATH, factories.access_token(alice))
    ws_alice_b, _ = await connect(b.ws_url, PATH, factories.access_token(alice))
    assert ws_alice_a.opening["unread_count"] == 0

    note = await sync_to_async(notifications.notify)(
        recipient=bob, kind="mention", title="look", link="/trips/1/edit"
    )
    for ws in (ws_bob_a, ws_bob_b):
        created = await recv_type(ws, "notification.created")
        assert created["notification"]["id"] == note.pk and created["unread_count"] == 2
    for ws in (ws_alice_a, ws_alice_b):
        await nothing_but_pong(ws, "notification.created")

    # Read on one socket: both of bob's sockets hear it.
    await send_json(ws_bob_a, {"type": "notification.read", "id": "r-1", "ids": [note.pk]})
    ack = await recv_until(ws_bob_a, lambda m: m["type"] == "ack")
    assert ack["ids"] == [note.pk] and ack["unread_count"] == 1
    for ws in (ws_bob_a, ws_bob_b):
        read = await recv_type(ws, "notification.read")
        assert read["ids"] == [note.pk] and read["unread_count"] == 1

    # Read all over REST: the sockets follow.
    client = APIClient()
    await sync_to_async(client.force_authenticate)(bob)
    response = await sync_to_async(client.post)("/api/notifications/read-all/")
    assert response.json()["unread_count"] == 0
    for ws in (ws_bob_a, ws_bob_b):
        read = await recv_type(ws, "notification.read")
        assert read["unread_count"] == 0
    for ws in (ws_alice_a, ws_alice_b):
        await nothing_but_pong(ws, "notification.read")
    for ws in (ws_bob_a, ws_bob_b, ws_alice_a, ws_alice_b):
        await ws.close()


async def test_a_chat_mention_reaches_the_mentioned_member_and_no_one_else(pair, crew):
    a, b = pair
    alice, bob, carol, trip = crew
    stranger = await sync_to_async(factories.make_user)("stranger")
    sockets = {}
    for user, server in ((bob, a), (carol, b), (stranger, a)):
        sockets[user.username], _ = await connect(server.ws_url, PATH, factories.access_token(user))
    chat, _ = await connect(a.ws_url, f"/ws/chat/{trip.pk}/", factories.access_token(alice))
    await send_json(chat, {"type": "chat.send", "id": "m", "text": "@bob @stranger tickets?"})
    await recv_until(chat, lambda m: m["type"] == "ack")
    created = await recv_type(sockets["bob"], "notification.created")
    assert created["notification"]["kind"] == "mention"
    assert created["notification"]["data"]["trip_id"] == trip.pk
    await nothing_but_pong(sockets["bob"], "notification.created")  # exactly one
    for name in ("carol", "stranger"):
        await nothing_but_pong(sockets[name], "notification.created")
    for ws in (*sockets.values(), chat):
        await ws.close()


async def test_read_requests_are_validated(server, crew):
    _, bob, *_ = crew
    ws, _ = await connect(server.ws_url, PATH, factories.access_token(bob))
    await send_json(ws, {"type": "notification.read", "id": "bad", "ids": []})
    error = await recv_type(ws, "error")
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT" and error["request_id"] == "bad"
    await send_json(ws, {"type": "notification.read", "id": "other", "ids": [999999]})
    ack = await recv_until(ws, lambda m: m["type"] == "ack")
    assert ack["ids"] == [] and ack["unread_count"] == 1
    await ws.close()
