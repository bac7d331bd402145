"""Chat over the network: two daphne processes, real clients, resume after a reconnect."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from collaboration.services import chat, members
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

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crew(transactional_db):
    alice, bob, carol, trip = factories.make_crew()
    return alice, bob, carol, trip, f"/ws/chat/{trip.pk}/"


class Display:
    """What a chat client shows: messages keyed by seq, each shown once, in seq order."""

    def __init__(self) -> None:
        self.shown: dict[int, str] = {}

    def take(self, message: dict) -> None:
        if message["type"] == "chat.message":
            self.shown.setdefault(message["seq"], message["message"]["text"])
        elif message["type"] == "chat.history":
            for item in message["messages"]:
                self.shown.setdefault(item["seq"], item["text"])

    @property
    def seqs(self) -> list[int]:
        return sorted(self.shown)

    @property
    def last_seq(self) -> int:
        return max(self.shown, default=0)


async def test_history_on_connect_and_live_messages_across_processes(pair, crew):
    a, b = pair
    alice, bob, carol, trip, path = crew
    for n in range(60):
        await sync_to_async(chat.chat_post)(trip_id=trip.pk, author=alice, text=f"old {n}")
    ws_bob, _ = await connect(b.ws_url, path, factories.access_token(bob))
    history = ws_bob.opening
    assert [m["seq"] for m in history["messages"]] == list(range(11, 61))
    assert history["has_more"] and history["seq"] == 60

    ws_carol, _ = await connect(a.ws_url, path, factories.access_token(carol))  # a viewer
    await send_json(ws_carol, {"type": "chat.send", "id": "c-1", "text": "viewers chat too"})
    ack = await recv_until(ws_carol, lambda m: m["type"] == "ack")
    assert ack["request_id"] == "c-1" and ack["status"] == "posted" and ack["seq"] == 61
    # The sender's own socket also gets the message, after its ack.
    own = await recv_type(ws_carol, "chat.message")
    assert own["seq"] == 61
    live = await recv_type(ws_bob, "chat.message")
    assert live["seq"] == 61 and live["message"]["text"] == "viewers chat too"
    assert live["message"]["author"]["username"] == "carol"
    for ws in (ws_bob, ws_carol):
        await ws.close()


async def test_each_message_is_shown_once_in_order_across_a_reconnect(pair, crew):
    a, b = pair
    alice, bob, _, _trip, path = crew
    display = Display()
    ws, _ = await connect(a.ws_url, path, factories.access_token(alice))
    display.take(ws.opening)
    ws_bob, _ = await connect(b.ws_url, path, factories.access_token(bob))
    for n in range(5):
        await send_json(ws_bob, {"type": "chat.send", "text": f"live {n}"})
        display.take(await recv_type(ws, "chat.message"))
    assert display.seqs == [1, 2, 3, 4, 5]
    await ws.close()

    # Away: 70 messages (more than the 50 of the history), from the other process.
    for n in range(70):
        await send_json(ws_bob, {"type": "chat.send", "id": f"b-{n}", "text": f"missed {n}"})
        await recv_until(ws_bob, lambda m, n=n: m.get("request_id") == f"b-{n}")

    ws, _ = await connect(a.ws_url, path, factories.access_token(alice))
    received = [ws.opening]
    await send_json(ws, {"type": "resume", "id": "r-1", "last_seq": display.last_seq})
    while True:
        message = await recv_json(ws)
        received.append(message)
        if message["type"] == "resume.complete":
            break
    assert message["replayed"] == 70 and message["seq"] == 75
    replayed = [m["seq"] for m in received if m["type"] == "chat.message"]
    assert replayed == list(range(6, 76))  # each missed one once, in order
    for message in received:
        display.take(message)
    # And live again.
    await send_json(ws_bob, {"type": "chat.send", "text": "welcome back"})
    display.take(await recv_type(ws, "chat.message"))
    assert display.seqs == list(range(1, 77))
    assert display.shown[6] == "missed 0" and display.shown[76] == "welcome back"
    for socket in (ws, ws_bob):
        await socket.close()


async def test_a_retried_send_posts_once_and_is_delivered_once(server, crew):
    alice, bob, _, _trip, path = crew
    ws_alice, _ = await connect(server.ws_url, path, factories.access_token(alice))
    ws_bob, _ = await connect(server.ws_url, path, factories.access_token(bob))
    client_id = str(uuid.uuid4())
    for attempt in range(3):
        await send_json(
            ws_alice,
            {
                "type": "chat.send",
                "id": f"s-{attempt}",
                "text": "only once",
                "client_id": client_id,
            },
        )
        ack = await recv_until(ws_alice, lambda m, a=attempt: m.get("request_id") == f"s-{a}")
        assert ack["status"] == ("posted" if attempt == 0 else "duplicate")
        assert ack["seq"] == 1
    await send_json(ws_alice, {"type": "chat.send", "text": "next"})
    got = []
    while len(got) < 2:
        message = await recv_type(ws_bob, "chat.message")
        got.append(message["seq"])
    assert got == [1, 2]
    for ws in (ws_alice, ws_bob):
        await ws.close()


async def test_typing_indicators_reach_the_others_and_expire(server, crew):
    alice, bob, _, _trip, path = crew
    ws_alice, _ = await connect(server.ws_url, path, factories.access_token(alice))
    ws_bob, _ = await connect(server.ws_url, path, factories.access_token(bob))
    await send_json(ws_alice, {"type": "typing.start"})
    typing = await recv_type(ws_bob, "typing.update")
    assert typing["user"]["username"] == "alice" and typing["typing"] is True
    assert typing["expires_at"] is not None
    await send_json(ws_alice, {"type": "typing.stop"})
    stopped = await recv_type(ws_bob, "typing.update")
    assert stopped["typing"] is False and stopped["expires_at"] is None
    # The typist's own socket is not told about itself: the next thing it sees is its pong.
    await send_json(ws_alice, {"type": "ping", "id": "sentinel"})
    seen = await recv_until(ws_alice, lambda m: m["type"] in ("typing.update", "pong"))
    assert seen["type"] == "pong"
    for ws in (ws_alice, ws_bob):
        await ws.close()


async def test_bad_chat_messages_get_precise_errors_and_strangers_are_refused(server, crew):
    alice, _, _, _trip, path = crew
    ws, _ = await connect(server.ws_url, path, factories.access_token(alice))
    await send_json(ws, {"type": "chat.send", "id": "e-1", "text": "   "})
    error = await recv_type(ws, "error")
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT" and error["request_id"] == "e-1"
    assert error["error"]["details"]["field"] == "text"
    await send_json(ws, {"type": "chat.send", "id": "e-2"})
    error = await recv_type(ws, "error")
    assert error["error"]["details"]["reason"] == "invalid_fields"
    await ws.close()

    stranger = await sync_to_async(factories.make_user)("stranger")
    refused = await open_socket(server.ws_url, path)
    await send_json(refused, {"token": factories.access_token(stranger)})
    code, messages = await closed_with(refused)
    assert code == 4003 and messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"


async def test_a_removed_member_stops_reading_the_chat_at_once(server, crew):
    alice, bob, _, trip, path = crew
    ws_bob, _ = await connect(server.ws_url, path, factories.access_token(bob))
    await sync_to_async(members.trip_member_remove)(trip_id=trip.pk, actor=alice, user=bob)
    code, messages = await closed_with(ws_bob)
    assert code == 4003
    assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"
    # What is posted afterwards never reached the removed member's socket.
    await sync_to_async(chat.chat_post)(trip_id=trip.pk, author=alice, text="after")
    assert not [m for m in messages if m["type"] == "chat.message"]


async def test_a_type_that_is_not_a_string_is_a_format_error(server, crew):
    alice, *_, path = crew
    ws, _ = await connect(server.ws_url, path, factories.access_token(alice))
    for bad in ([], {}, 7):
        await send_json(ws, {"type": bad, "id": "t"})
        error = await recv_type(ws, "error")
        assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT", error
    await send_json(ws, {"type": "ping", "id": "still-open"})
    assert (await recv_type(ws, "pong"))["request_id"] == "still-open"
    await ws.close()
