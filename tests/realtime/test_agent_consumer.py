"""The agent status endpoint over the network: real daphne processes (two for isolation across
processes), real Redis and database, real WebSocket clients."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from agents import services
from collaboration.services import members
from tests import factories
from tests.wsclient import closed_with, connect, open_socket, recv_json, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/agent-status/"
token_for = sync_to_async(factories.access_token)
create = sync_to_async(services.agent_run_create)
update = sync_to_async(services.agent_run_update)


@pytest.fixture
def crew(transactional_db):
    return factories.make_crew()


async def subscribe(server, user):
    ws, established = await connect(server.ws_url, PATH, await token_for(user))
    assert established["connection_type"] == "agent_status"
    return ws, ws.opening


async def until_pong(ws, request_id: str = "sentinel") -> list[dict]:
    """Everything the socket sent before the answer to a ping sent now. Group events that were
    published before reached this process's inbox first, so this is what it ever got."""
    await send_json(ws, {"type": "ping", "id": request_id})
    seen = []
    while True:
        message = await recv_json(ws)
        if message["type"] == "pong" and message.get("request_id") == request_id:
            return seen
        if message["type"] == "ping":
            await send_json(ws, {"type": "pong", "request_id": message["id"]})
            continue
        seen.append(message)


def agent_events(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"].startswith("agent.")]


def run_event(run_id: int, **fields):
    def matches(message: dict) -> bool:
        if message["type"] != "agent.run" or message["run"]["id"] != run_id:
            return False
        return all(message["run"].get(key) == value for key, value in fields.items())

    return matches


async def test_connect_sends_the_active_runs_you_may_see(live, crew):
    alice, bob, _, trip = crew
    stranger = await sync_to_async(factories.make_user)("stranger")
    on_trip = await create(owner=alice, agent="planner", trip_id=trip.pk)
    private = await create(owner=alice, agent="budget")
    await update(run_id=private.pk, state="running", progress=25, step="prices")
    finished = await create(owner=alice, agent="done", trip_id=trip.pk)
    await update(run_id=finished.pk, state="succeeded")
    await create(owner=stranger, agent="other")

    a, opening = await subscribe(live, alice)
    assert [run["id"] for run in opening["runs"]] == [on_trip.pk, private.pk]
    running = opening["runs"][1]
    assert (running["state"], running["progress"], running["step"]) == ("running", 25, "prices")
    assert running["owner"] == {"id": alice.pk, "username": "alice"}
    assert running["version"] == 2 and running["started_at"] and running["finished_at"] is None
    b, opening = await subscribe(live, bob)
    assert [run["id"] for run in opening["runs"]] == [on_trip.pk]
    for ws in (a, b):
        await ws.close()


async def only_event(ws, predicate) -> dict:
    """The next agent event must match, and nothing else of agents follows it (no repeat)."""
    message = await recv_until(ws, lambda m: m["type"].startswith("agent."))
    assert predicate(message), message
    assert agent_events(await until_pong(ws)) == []
    return message


async def test_no_user_receives_another_users_runs_across_two_processes(pair, crew):
    alice, bob, _, trip = crew
    stranger = await sync_to_async(factories.make_user)("stranger")
    a, _ = await subscribe(pair[0], alice)
    b, _ = await subscribe(pair[1], bob)
    watchers = [(await subscribe(server, stranger))[0] for server in pair]
    assert all(ws.opening["runs"] == [] for ws in watchers)

    # Alice owns it and is on its trip: each change reaches her once, not once per group.
    on_trip = await create(owner=alice, agent="planner", trip_id=trip.pk)
    for ws in (a, b):
        created = await only_event(ws, run_event(on_trip.pk, state="queued", version=1))
        assert created["run"]["trip_id"] == trip.pk
    await update(run_id=on_trip.pk, state="running", progress=50, step="flights")
    for ws in (a, b):
        await only_event(ws, run_event(on_trip.pk, progress=50, step="flights", version=2))

    alices_own = await create(owner=alice, agent="budget")
    await only_event(a, run_event(alices_own.pk, version=1))
    bobs_own = await create(owner=bob, agent="packing")
    await only_event(b, run_event(bobs_own.pk, version=1))
    assert agent_events(await until_pong(a)) == []

    for ws in watchers:
        assert agent_events(await until_pong(ws)) == []
    for ws in (a, b, *watchers):
        await ws.close()


async def test_owner_cancels_and_the_trip_hears_it_on_the_other_process(pair, crew):
    alice, bob, _, trip = crew
    run = await create(owner=alice, agent="planner", trip_id=trip.pk)
    await update(run_id=run.pk, state="running")
    a, _ = await subscribe(pair[0], alice)
    b, _ = await subscribe(pair[1], bob)

    await send_json(a, {"type": "agent.cancel", "id": "c-1", "run_id": run.pk})
    ack = await recv_until(a, lambda m: m["type"] == "ack" and m.get("request_id") == "c-1")
    assert ack["run"]["state"] == "cancelled" and ack["run"]["finished_at"]
    for ws in (a, b):
        await recv_until(ws, run_event(run.pk, state="cancelled", version=3))

    await send_json(a, {"type": "agent.cancel", "id": "c-2", "run_id": run.pk})
    again = await recv_until(a, lambda m: m.get("request_id") == "c-2")
    assert again["type"] == "error"
    assert again["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert again["error"]["details"]["field"] == "run_id"
    for ws in (a, b):
        await ws.close()


async def test_a_member_who_is_not_the_owner_cannot_cancel_and_stays_connected(live, crew):
    alice, bob, _, trip = crew
    run = await create(owner=alice, agent="planner", trip_id=trip.pk)
    b, _ = await subscribe(live, bob)
    await send_json(b, {"type": "agent.cancel", "id": "c-1", "run_id": run.pk})
    refused = await recv_until(b, lambda m: m.get("request_id") == "c-1")
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "AUTHORIZATION_FAILED"
    assert refused["error"]["message"] == "Only the run's owner can cancel it."

    stranger = await sync_to_async(factories.make_user)("stranger")
    s, _ = await subscribe(live, stranger)
    await send_json(s, {"type": "agent.cancel", "id": "c-2", "run_id": run.pk})
    hidden = await recv_until(s, lambda m: m.get("request_id") == "c-2")
    assert hidden["error"]["code"] == "AUTHORIZATION_FAILED"
    assert hidden["error"]["message"] == "No such agent run."

    assert await until_pong(b) == []  # still open, still answering
    await update(run_id=run.pk, progress=10)
    await recv_until(b, run_event(run.pk, state="queued", progress=10))
    for ws in (b, s):
        await ws.close()


async def test_a_removed_member_hears_nothing_more_of_the_trips_runs(live, crew):
    alice, bob, _, trip = crew
    run = await create(owner=alice, agent="planner", trip_id=trip.pk)
    a, _ = await subscribe(live, alice)
    b, _ = await subscribe(live, bob)
    await sync_to_async(members.trip_member_remove)(trip_id=trip.pk, actor=alice, user=bob)
    await update(run_id=run.pk, progress=20)
    await recv_until(a, run_event(run.pk, progress=20))
    assert agent_events(await until_pong(b)) == []
    await update(run_id=run.pk, progress=30)
    await recv_until(a, run_event(run.pk, progress=30))
    assert agent_events(await until_pong(b, "again")) == []
    for ws in (a, b):
        await ws.close()


async def test_bad_cancel_messages_get_the_envelope(live, crew):
    alice, *_ = crew
    a, _ = await subscribe(live, alice)
    await send_json(a, {"type": "agent.cancel", "id": "c-1", "run_id": "seven"})
    error = await recv_until(a, lambda m: m.get("request_id") == "c-1")
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert error["error"]["details"]["field"] == "run_id"
    await send_json(a, {"type": "echo", "id": "c-2", "data": 1})
    unknown = await recv_until(a, lambda m: m.get("request_id") == "c-2")
    assert unknown["error"]["details"]["reason"] == "unknown_type"
    assert "agent.cancel" in unknown["error"]["details"]["accepted"]
    await a.close()


async def test_a_bad_token_is_refused_with_4001(live):
    ws = await open_socket(live.ws_url, PATH)
    await send_json(ws, {"token": "not-a-jwt", "id": "a"})
    code, messages = await closed_with(ws)
    assert code == 4001 and messages[-1]["error"]["code"] == "AUTHENTICATION_FAILED"
