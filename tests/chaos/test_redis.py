"""Redis faults with live sockets on two processes: Redis frozen, killed and restarted empty, wiped.

The rule (issue 14): an acknowledged change is never lost, every socket converges to the
database with no further edit by anyone, and presence counts are exact again by themselves."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.chaos.conftest import CONVERGENCE_BOUND, RedisServer, record, timing
from tests.chaos.views import converged, database_state, edit, join, token_for
from tests.wsclient import closed_with, connect, open_socket, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_committed_edit_is_acknowledged_while_redis_is_down_and_every_socket_converges(
    redis: RedisServer, processes, crew
):
    alice, bob, _, trip = crew
    a, b = processes
    on_a = await join(a, trip, alice)
    on_b = await join(b, trip, bob)
    chat_a, _ = await connect(a.ws_url, f"/ws/chat/{trip.pk}/", await token_for(alice))
    chat_b, _ = await connect(b.ws_url, f"/ws/chat/{trip.pk}/", await token_for(bob))
    await on_a.until(lambda v: v.collaborators == {"alice": 1, "bob": 1}, 10)

    redis.kill()
    ack = await edit(on_a, "name", "Written while Redis is down", "down", timeout=10)
    assert ack["status"] == "applied"
    _, db_seq, logged = await database_state(trip.pk)
    assert ack["seq"] == db_seq and ack["seq"] in logged
    await send_json(chat_a, {"type": "chat.send", "id": "post", "text": "posted while down"})
    posted = await recv_until(chat_a, lambda m: m.get("request_id") == "post")
    assert posted["type"] == "ack" and posted["status"] == "posted", posted

    redis.start()  # back, and empty; nobody edits from here on
    back = time.monotonic()
    await converged([on_a, on_b], trip, timeout=CONVERGENCE_BOUND + 3)  # the bound, and slack
    record("Redis killed, restarted empty", "every socket at the database's seq",
           time.monotonic() - back, CONVERGENCE_BOUND)  # fmt: skip
    for chat in (chat_a, chat_b):  # the chat's sockets too, with the message posted meanwhile
        shown = await recv_until(chat, lambda m: m["type"] == "chat.message", CONVERGENCE_BOUND + 3)
        assert (shown["seq"], shown["message"]["text"]) == (posted["seq"], "posted while down")

    failures = await asyncio.to_thread(a.metric, "tripsage_publish_failures_total")
    assert failures >= 1


async def test_redis_frozen_never_holds_an_edit_and_every_socket_converges_after(
    redis: RedisServer, processes, crew
):
    alice, bob, _, trip = crew
    a, b = processes
    on_a = await join(a, trip, alice)
    on_b = await join(b, trip, bob)

    frozen_at = time.monotonic()
    redis.freeze()
    try:
        # The ack comes while Redis is still frozen: publishing is bounded, the commit is not
        # held by it (10 s is the freeze; the publish timeout is 1 s).
        ack = await edit(on_a, "budget", "4200", "frozen", timeout=8)
        assert ack["status"] == "applied"
    finally:
        await asyncio.sleep(max(0.0, frozen_at + 10 - time.monotonic()))  # a 10 s freeze
        redis.thaw()
    thawed = time.monotonic()
    await converged([on_a, on_b], trip, timeout=CONVERGENCE_BOUND + 3)
    record("Redis frozen 10 s (SIGSTOP)", "every socket at the database's seq",
           time.monotonic() - thawed, CONVERGENCE_BOUND)  # fmt: skip


LOSSES = {"flushall": "wiped (FLUSHALL)", "restart_empty": "restarted empty"}


async def rebuilt(redis: RedisServer, sizes: dict[str, int], timeout: float) -> float:
    """Seconds until each of these sorted sets (named without the processes' key prefix) holds
    its size again in Redis."""
    client = redis.client()
    prefix = os.environ.get("CHANNEL_LAYER_PREFIX", "tripsage")  # the processes' (run_tests.py)
    started = time.monotonic()
    while True:
        found = {key: await asyncio.to_thread(client.zcard, prefix + key) for key in sizes}
        if found == sizes:
            return time.monotonic() - started
        assert time.monotonic() < started + timeout, f"Redis holds {found}, not {sizes}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("loss", list(LOSSES))
async def test_presence_editing_and_connection_slots_rebuild_after_redis_loses_its_data(
    redis: RedisServer, start_process, crew, loss
):
    """Four sockets of three users on two processes; Redis loses everything. Within one keeper
    interval every socket is shown the exact counts again (with a newer presence version than
    it has seen), the editing indicator is back, and the per-user socket limit holds again."""
    alice, bob, carol, trip = crew
    a = start_process("chaos-a", REALTIME_MAX_CONNECTIONS_PER_USER="2")
    b = start_process("chaos-b", REALTIME_MAX_CONNECTIONS_PER_USER="2")
    alice_a = await join(a, trip, alice)
    alice_b = await join(b, trip, alice)
    bob_b = await join(b, trip, bob)
    carol_a = await join(a, trip, carol)
    exact = {"alice": 2, "bob": 1, "carol": 1}
    await send_json(bob_b.ws, {"type": "editing.start", "field": "notes"})
    for view in (alice_a, alice_b, bob_b, carol_a):
        await view.until(lambda v: v.collaborators == exact and v.editing == {("bob", "notes")}, 10)

    getattr(redis, loss)()
    keeper = timing("PRESENCE_REFRESH_SECONDS")
    renewal = timing("REALTIME_CONNECTION_LEASE_SECONDS") / 3
    entries, slots = await asyncio.gather(
        rebuilt(redis, {f"-presence-trip-{trip.pk}": 4, f"-editing-trip-{trip.pk}": 1}, keeper + 5),
        rebuilt(redis, {f":rl:slots:{alice.pk}": 2, f":rl:slots:{bob.pk}": 1}, renewal + 5),
    )
    record(f"Redis {LOSSES[loss]}", "presence and editing entries all back", entries, keeper)
    record(f"Redis {LOSSES[loss]}", "connection slots all back", slots, renewal)
    # A socket that opens now may see a partial state; within one keeper interval (0.5 s here)
    # every socket shows the whole one again, and a socket that opens then sees it too.
    views = (alice_a, alice_b, bob_b, carol_a)
    await asyncio.gather(*(view.settle(2) for view in views))
    assert [view.collaborators for view in views] == [exact] * 4
    late = await join(a, trip, carol)
    await late.settle(2)  # its snapshot, then any presence.update the join itself causes
    assert late.collaborators == {"alice": 2, "bob": 1, "carol": 2}
    assert [view.editing for view in (*views, late)] == [{("bob", "notes")}] * 5

    # alice holds her two sockets: a third is refused on either process, as before the loss.
    third = await open_socket(b.ws_url, f"/ws/trips/{trip.pk}/")
    await send_json(third, {"token": await token_for(alice), "id": "third"})
    code, messages = await closed_with(third)
    assert code == 4029 and messages[-1]["error"]["details"]["reason"] == "too_many_connections"


async def test_a_socket_opened_while_redis_is_down_is_told_to_retry_and_connects_once_it_is_back(
    redis: RedisServer, start_process, crew
):
    """A new socket is answered SERVER_ERROR (retryable) and 4011 within a bounded wait, never
    left hanging; once Redis answers, the same client connects. (A process that starts while
    Redis is down exits at once saying so, for its supervisor to start it again.)"""
    alice, bob, _, trip = crew
    path = f"/ws/trips/{trip.pk}/"
    running = start_process("chaos-running")
    await join(running, trip, alice)
    redis.kill()
    for server in (running,):
        ws = await open_socket(server.ws_url, path)
        await send_json(ws, {"token": await token_for(bob), "id": "during"})
        code, messages = await closed_with(ws, timeout=20)
        errors = [m for m in messages if m["type"] == "error"]
        assert code == 4011 and [e["error"]["code"] for e in errors] == ["SERVER_ERROR"], messages
        assert errors[0]["error"]["details"]["retryable"] is True
    redis.start()
    for server in (running,):
        for _ in range(50):  # the client's backoff: the layer reconnects within a few seconds
            ws = await open_socket(server.ws_url, path)
            await send_json(ws, {"token": await token_for(bob), "id": "after"})
            first = await recv_until(ws, lambda m: m["type"] in ("connection.established", "error"))
            await ws.close()
            if first["type"] == "connection.established":
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"{server.ws_url} never accepted a socket again")
