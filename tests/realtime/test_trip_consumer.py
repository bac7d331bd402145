"""The trip endpoint over the network: real daphne processes (two where it crosses processes),
real Redis and database, real WebSocket clients acting as the seed's two users."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed

from collaboration.models import ChatMessage, Conflict, Trip, TripMember
from collaboration.services import members, trips
from events import broadcast
from tests import factories
from tests.conftest import PRESENCE_TIMINGS
from tests.wsclient import (
    closed_with,
    collaborators,
    connect,
    editing,
    open_socket,
    recv_json,
    recv_type,
    recv_until,
    send_json,
)

pytestmark = pytest.mark.django_db(transaction=True)

make_user = sync_to_async(factories.make_user)
make_trip = sync_to_async(factories.make_trip)
token_for = sync_to_async(factories.access_token)
get_trip = sync_to_async(lambda pk: Trip.objects.get(pk=pk))


@pytest.fixture
def crew(transactional_db):
    return factories.make_crew()


async def join(server, trip, user):
    ws, _ = await connect(server.ws_url, f"/ws/trips/{trip.pk}/", await token_for(user))
    return ws, ws.snapshot


def update_msg(field, value, base_version, update_id=None, id_="u"):
    return {
        "type": "trip.update",
        "id": id_,
        "update_id": str(update_id or uuid.uuid4()),
        "field": field,
        "value": value,
        "base_version": base_version,
    }


def is_type(type_, **fields):
    return lambda m: m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())


@pytest.mark.parametrize("role", ["owner", "editor", "viewer"])
async def test_members_of_every_role_connect_and_get_the_snapshot(live, role):
    owner = await make_user("owner")
    member = await make_user("member")
    trip = await make_trip(owner, {member: role} if role != "owner" else {})
    user = owner if role == "owner" else member
    ws, snapshot = await join(live, trip, user)
    assert snapshot["role"] == role
    assert snapshot["trip"]["fields"]["name"] == "owner's trip"
    assert snapshot["trip"]["version"] == 1
    assert set(snapshot["trip"]["field_versions"]) == set(snapshot["trip"]["fields"])
    assert snapshot["seq"] == snapshot["trip"]["seq"]
    assert collaborators(snapshot) == {user.username: 1}
    assert snapshot["collaborator_count"] == 1 and snapshot["conflicts"] == []
    await ws.close()


@pytest.mark.parametrize("which", ["not-a-member", "no-such-trip"])
async def test_non_member_and_unknown_trip_are_refused_alike(live, which):
    owner = await make_user("owner")
    stranger = await make_user("stranger")
    trip = await make_trip(owner)
    trip_id = trip.pk if which == "not-a-member" else trip.pk + 1000
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip_id}/")
    await send_json(ws, {"token": await token_for(stranger), "id": "a"})
    code, messages = await closed_with(ws)
    assert code == 4003
    assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"
    assert messages[-1]["request_id"] == "a"
    assert messages[-1]["error"]["message"] == "You are not a member of this trip."


async def test_seed_scenario_two_users_on_two_processes_see_count_indicator_and_edits(pair, crew):
    """The seed's 'multiple users can edit trip simultaneously', as two users on two servers."""
    alice, bob, _, trip = crew
    a, _ = await join(pair[0], trip, alice)
    b, b_snapshot = await join(pair[1], trip, bob)
    assert b_snapshot["collaborator_count"] == 2
    seen_by_alice = await recv_until(a, is_type("presence.update", collaborator_count=2))
    assert collaborators(seen_by_alice) == {"alice": 1, "bob": 1}

    await send_json(a, {"type": "editing.start", "field": "name"})
    indicator = await recv_until(b, lambda m: m["type"] == "editing.update" and m["editing"])
    assert editing(indicator) == {("alice", "name")}

    await send_json(a, update_msg("name", "European Adventure", 1, id_="save-name"))
    ack = await recv_until(a, is_type("ack", request_id="save-name"))
    assert ack["status"] == "applied" and ack["version"] == 2
    for ws in (a, b):
        updated = await recv_until(ws, is_type("trip.updated", field="name"))
        assert updated["value"] == "European Adventure"
        assert updated["by"]["username"] == "alice" and updated["seq"] == ack["seq"]

    await send_json(b, update_msg("budget", "3500", b_snapshot["trip"]["version"]))
    budget = await recv_until(a, is_type("trip.updated", field="budget"))
    assert budget["value"] == "3500" and budget["by"]["username"] == "bob"
    await send_json(a, {"type": "editing.stop", "field": "name"})
    cleared = await recv_until(b, lambda m: m["type"] == "editing.update" and not m["editing"])
    assert cleared["editing"] == []
    await a.close()
    await b.close()


async def test_seed_scenario_conflicting_budget_edits_resolved_with_use_mine(pair, crew):
    """The seed's 'should resolve edit conflicts': both type a budget from the same version."""
    alice, bob, _, trip = crew
    a, _ = await join(pair[0], trip, alice)
    b, _ = await join(pair[1], trip, bob)
    await asyncio.gather(
        send_json(a, update_msg("budget", "3000", 1, id_="a-budget")),
        send_json(b, update_msg("budget", "3500", 1, id_="b-budget")),
    )
    acks = [
        await recv_until(a, is_type("ack", request_id="a-budget")),
        await recv_until(b, is_type("ack", request_id="b-budget")),
    ]
    assert sorted(ack["status"] for ack in acks) == ["applied", "conflict"]
    conflict_id = next(ack["conflict_id"] for ack in acks if ack["status"] == "conflict")
    for ws in (a, b):
        detected = await recv_until(ws, is_type("conflict.detected"))
        assert detected["conflict"]["id"] == conflict_id
        values = {
            detected["conflict"]["applied"]["value"],
            detected["conflict"]["proposed"]["value"],
        }
        assert values == {"3000", "3500"}

    await send_json(
        a, {"type": "conflict.resolve", "id": "r", "conflict_id": conflict_id, "choice": "mine"}
    )
    assert (await recv_until(a, is_type("ack", request_id="r")))["value"] == "3000"
    for ws in (a, b):
        resolved = await recv_until(ws, is_type("conflict.resolved"))
        assert resolved["conflict"]["status"] == "resolved"
        assert resolved["conflict"]["resolved_value"] == "3000"
    assert str((await get_trip(trip.pk)).budget) == "3000.00"
    await a.close()
    await b.close()


async def test_killing_a_process_clears_its_users_from_presence(pair, daphne_factory, crew):
    alice, bob, _, trip = crew
    victim = await asyncio.to_thread(daphne_factory, "victim", **PRESENCE_TIMINGS)
    a, _ = await join(pair[0], trip, alice)
    b, _ = await join(victim, trip, bob)
    await recv_until(a, is_type("presence.update", collaborator_count=2))
    await send_json(b, {"type": "editing.start", "field": "notes"})
    await recv_until(a, lambda m: m["type"] == "editing.update" and m["editing"])

    victim.process.kill()  # no disconnect handler runs
    gone = await recv_until(a, is_type("presence.update", collaborator_count=1), timeout=15)
    assert collaborators(gone) == {"alice": 1}
    await recv_until(a, lambda m: m["type"] == "editing.update" and not m["editing"], timeout=15)
    await a.close()


async def test_editing_indicator_expires_without_renewal_and_clears_on_disconnect(pair, crew):
    alice, bob, _, trip = crew
    a, _ = await join(pair[0], trip, alice)
    b, _ = await join(pair[1], trip, bob)
    await send_json(b, {"type": "editing.start", "field": "destination"})
    await recv_until(a, lambda m: m["type"] == "editing.update" and m["editing"])
    # EDITING_TTL_SECONDS is 2 on these servers: no renewal, so it goes by itself.
    await recv_until(a, lambda m: m["type"] == "editing.update" and not m["editing"], timeout=10)

    await send_json(b, {"type": "editing.start", "field": "destination"})
    await recv_until(a, lambda m: m["type"] == "editing.update" and m["editing"])
    await b.close()
    await recv_until(a, lambda m: m["type"] == "editing.update" and not m["editing"], timeout=5)
    await a.close()


async def test_twenty_concurrent_updates_of_one_field_one_applied_nineteen_conflicts(pair, crew):
    alice, _, _, trip = crew
    editors = [await make_user(f"editor{i}") for i in range(20)]
    for user in editors:
        await sync_to_async(members.trip_member_set)(
            trip_id=trip.pk, actor=alice, user=user, role="editor"
        )
    sockets = [(await join(pair[i % 2], trip, user))[0] for i, user in enumerate(editors)]
    base = (await get_trip(trip.pk)).version
    await asyncio.gather(
        *(
            send_json(ws, update_msg("notes", f"from editor{i}", base, id_=f"n{i}"))
            for i, ws in enumerate(sockets)
        )
    )
    acks = [
        await recv_until(ws, is_type("ack", request_id=f"n{i}")) for i, ws in enumerate(sockets)
    ]
    statuses = sorted(ack["status"] for ack in acks)
    assert statuses == ["applied"] + ["conflict"] * 19
    trip_now = await get_trip(trip.pk)
    assert trip_now.version == base + 1
    winner = next(i for i, ack in enumerate(acks) if ack["status"] == "applied")
    assert trip_now.notes == f"from editor{winner}"
    assert await sync_to_async(Conflict.objects.filter(trip=trip, status="open").count)() == 19
    for ws in sockets:
        await ws.close()


TEN_LINES = "".join(f"Day {i}: free.\n" for i in range(1, 11))


async def set_notes(trip, actor, notes):
    await sync_to_async(factories.update)(trip, actor, "notes", notes, trip.version)


def with_line(text, number, line):
    lines = text.splitlines(keepends=True)
    lines[number - 1] = line
    return "".join(lines)


async def read_notes(ws, notes_by_seq, acks, done):
    """Read until `done()`, keeping the notes each `ack` and `trip.updated` gives by their `seq`
    (what a client applies), and the acks by `request_id`."""
    async with asyncio.timeout(30):
        while not done():
            message = await recv_json(ws)
            if message["type"] == "ping":
                await send_json(ws, {"type": "pong", "request_id": message["id"]})
            elif message["type"] == "ack":
                acks[message["request_id"]] = message
                if message["seq"]:
                    notes_by_seq[message["seq"]] = message["value"]
            elif message["type"] == "trip.updated" and message["field"] == "notes":
                notes_by_seq[message["seq"]] = message["value"]


async def test_ten_editors_changing_different_lines_at_once_all_merge_without_a_conflict(
    pair, crew
):
    """Issue 18: ten people change a different line of the same notes from the same version, at
    once, on two processes: every change is in the notes, no conflict, and every client's notes
    (from the acks and events it was sent, applied in seq order) are the database's."""
    alice, _, _, trip = crew
    editors = [await make_user(f"liner{i}") for i in range(10)]
    for user in editors:
        await sync_to_async(members.trip_member_set)(
            trip_id=trip.pk, actor=alice, user=user, role="editor"
        )
    await set_notes(trip, alice, TEN_LINES)
    joined = [await join(pair[i % 2], trip, user) for i, user in enumerate(editors)]
    sockets = [ws for ws, _ in joined]
    assert {snapshot["trip"]["fields"]["notes"] for _, snapshot in joined} == {TEN_LINES}
    base = joined[0][1]["trip"]["field_versions"]["notes"]
    lines = [f"Day {i + 1}: plan by liner{i}.\n" for i in range(10)]
    await asyncio.gather(
        *(
            send_json(
                ws, update_msg("notes", with_line(TEN_LINES, i + 1, lines[i]), base, id_=f"l{i}")
            )
            for i, ws in enumerate(sockets)
        )
    )
    seen = [{} for _ in sockets]
    acks = {}
    await asyncio.gather(
        *(
            read_notes(ws, seen[i], acks, lambda i=i: f"l{i}" in acks)
            for i, ws in enumerate(sockets)
        )
    )
    assert sorted(ack["status"] for ack in acks.values()) == ["applied"] + ["merged"] * 9
    trip_now = await get_trip(trip.pk)
    last = max(ack["seq"] for ack in acks.values())
    assert last == trip_now.seq and trip_now.version == base + 10
    await asyncio.gather(
        *(
            read_notes(ws, seen[i], acks, lambda i=i: last in seen[i])
            for i, ws in enumerate(sockets)
        )
    )
    assert trip_now.notes == "".join(lines)  # every change
    for notes_by_seq in seen:  # every client's notes
        assert [notes_by_seq[seq] for seq in sorted(notes_by_seq)][-1] == trip_now.notes
    assert not await sync_to_async(Conflict.objects.filter(trip=trip).exists)()
    for ws in sockets:
        await ws.close()


async def test_two_editors_changing_the_same_words_one_applied_one_conflict(pair, crew):
    alice, bob, _, trip = crew
    await set_notes(trip, alice, TEN_LINES)
    a, snapshot = await join(pair[0], trip, alice)
    b, _ = await join(pair[1], trip, bob)
    base = snapshot["trip"]["field_versions"]["notes"]
    proposals = {
        "a": with_line(TEN_LINES, 3, "Day 3: museum.\n"),
        "b": with_line(TEN_LINES, 3, "Day 3: beach.\n"),
    }
    await asyncio.gather(
        send_json(a, update_msg("notes", proposals["a"], base, id_="a")),
        send_json(b, update_msg("notes", proposals["b"], base, id_="b")),
    )
    acks = {"a": await recv_until(a, is_type("ack", request_id="a"))}
    acks["b"] = await recv_until(b, is_type("ack", request_id="b"))
    assert sorted(ack["status"] for ack in acks.values()) == ["applied", "conflict"]
    applied = next(name for name, ack in acks.items() if ack["status"] == "applied")
    refused = "b" if applied == "a" else "a"
    assert acks[refused]["value"] == proposals[applied]  # the value in force, not a merge
    for ws in (a, b):
        detected = await recv_until(ws, is_type("conflict.detected"))
        assert detected["conflict"]["id"] == acks[refused]["conflict_id"]
        assert detected["conflict"]["proposed"]["value"] == proposals[refused]
    assert (await get_trip(trip.pk)).notes == proposals[applied]
    await a.close()
    await b.close()


async def test_same_update_id_five_times_in_sequence_and_at_once_has_one_effect(pair, crew):
    alice, _, _, trip = crew
    update_id = uuid.uuid4()
    ws, _ = await join(pair[0], trip, alice)
    for i in range(5):
        await send_json(ws, update_msg("name", "Once", 1, update_id, id_=f"s{i}"))
    in_sequence = [
        (await recv_until(ws, is_type("ack", request_id=f"s{i}")))["status"] for i in range(5)
    ]
    assert in_sequence == ["applied"] + ["duplicate"] * 4

    at_once_id = uuid.uuid4()
    sockets = [(await join(pair[i % 2], trip, alice))[0] for i in range(5)]
    base = (await get_trip(trip.pk)).version
    await asyncio.gather(
        *(
            send_json(s, update_msg("destination", "Porto", base, at_once_id, id_="x"))
            for s in sockets
        )
    )
    acks = [await recv_until(s, is_type("ack", request_id="x")) for s in sockets]
    assert sorted(a["status"] for a in acks) == ["applied"] + ["duplicate"] * 4
    assert {(a["seq"], a["version"]) for a in acks} == {(acks[0]["seq"], acks[0]["version"])}
    trip_now = await get_trip(trip.pk)
    assert trip_now.version == base + 1 and trip_now.destination == "Porto"
    for s in [ws, *sockets]:
        await s.close()


async def test_client_away_for_fifty_edits_resumes_with_exactly_the_missed_events(pair, crew):
    _, bob, carol, trip = crew
    c, snapshot = await join(pair[1], trip, carol)
    state = dict(snapshot["trip"]["fields"])
    last_seq = snapshot["seq"]
    await c.close()

    b, _ = await join(pair[0], trip, bob)
    version = snapshot["trip"]["version"]
    for i in range(50):
        field = ("name", "destination", "notes", "budget")[i % 4]
        value = str(100 + i) if field == "budget" else f"{field} {i}"
        await send_json(b, update_msg(field, value, version, id_=f"e{i}"))
        version = (await recv_until(b, is_type("ack", request_id=f"e{i}")))["version"]
    await b.close()

    c, _ = await join(pair[0], trip, carol)  # back, on the other process
    await send_json(c, {"type": "resume", "id": "back", "last_seq": last_seq})
    replayed = []
    while True:
        message = await recv_until(c, lambda m: m["type"] in ("trip.updated", "resume.complete"))
        if message["type"] == "resume.complete":
            break
        replayed.append(message)
    assert [m["seq"] for m in replayed] == list(range(last_seq + 1, last_seq + 51))
    assert message["request_id"] == "back" and message["replayed"] == 50
    for event in replayed:
        state[event["field"]] = event["value"]
    rest = await sync_to_async(_rest_get)(carol, trip.pk)
    assert state == rest["fields"]
    await c.close()


async def test_a_resume_is_answered_from_memory_when_the_process_kept_every_missed_event(
    daphne_factory, crew
):
    """A process with members of a trip keeps its last events (here 10): a member back within
    them is answered from memory, exactly as from the log; further back, from the log."""
    _, bob, carol, trip = crew
    server = await asyncio.to_thread(
        daphne_factory, "recent", REALTIME_RESUME_FROM_MEMORY_EVENTS="10"
    )

    async def replays(kind: str) -> float:
        return await asyncio.to_thread(
            server.metric, "tripsage_ws_replays_total",
            connection_type="trip_collaboration", kind=kind,
        )  # fmt: skip

    b, snapshot = await join(server, trip, bob)  # stays: the process keeps the trip's stream
    version = snapshot["trip"]["version"]

    async def edits(count: int, tag: str) -> None:
        nonlocal version
        for i in range(count):
            await send_json(b, update_msg("notes", f"{tag} {i}", version, id_=f"{tag}{i}"))
            version = (await recv_until(b, is_type("ack", request_id=f"{tag}{i}")))["version"]

    async def away_and_back(count: int, tag: str) -> list[dict]:
        c, snap = await join(server, trip, carol)
        last_seq = snap["seq"]
        await c.close()
        await edits(count, tag)
        c, _ = await join(server, trip, carol)
        await send_json(c, {"type": "resume", "id": tag, "last_seq": last_seq})
        replayed = []
        while True:
            m = await recv_until(c, lambda m: m["type"] in ("trip.updated", "resume.complete"))
            if m["type"] == "resume.complete":
                break
            replayed.append(m)
        assert m["request_id"] == tag and m["replayed"] == count
        assert [e["seq"] for e in replayed] == list(range(last_seq + 1, last_seq + count + 1))
        assert [e["value"] for e in replayed] == [f"{tag} {i}" for i in range(count)]
        await c.close()
        return replayed

    from_memory, from_log = await replays("resume_recent"), await replays("resume")
    await away_and_back(8, "near")
    assert await replays("resume_recent") == from_memory + 8
    assert await replays("resume") == from_log
    await away_and_back(12, "far")  # more than the 10 kept: the log answers
    assert await replays("resume_recent") == from_memory + 8
    assert await replays("resume") == from_log + 12
    await b.close()


def _rest_get(user, trip_id):
    client = APIClient()
    client.force_authenticate(user)
    return client.get(f"/api/trips/{trip_id}/").json()


async def test_resume_from_a_pruned_seq_gets_a_fresh_snapshot_and_the_flag(live, crew, settings):
    settings.TRIP_EVENT_RETENTION = 5
    alice, _, _, trip = crew
    for i in range(20):
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes",
            value=f"n{i}", base_version=i + 1,
        )  # fmt: skip
    ws, _ = await join(live, trip, alice)
    await send_json(ws, {"type": "resume", "id": "old", "last_seq": 1})
    resync = await recv_until(ws, is_type("resync.required"))
    assert resync["request_id"] == "old" and resync["reason"] == "too_old"
    assert resync["snapshot"]["trip"]["fields"]["notes"] == "n19"
    assert resync["snapshot"]["seq"] == (await get_trip(trip.pk)).seq
    await ws.close()


async def test_an_event_the_layer_dropped_is_filled_in_from_the_log(live, crew, monkeypatch):
    alice, bob, _, trip = crew
    ws, snapshot = await join(live, trip, bob)
    sends = []
    real = broadcast._group_send
    monkeypatch.setattr(
        broadcast, "_group_send", lambda g, e: sends.append(e) if not sends else real(g, e)
    )  # the first event is "lost" by the layer; the second goes through
    for i, value in enumerate(["lost", "delivered"]):
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes",
            value=value, base_version=1 + i,
        )  # fmt: skip
    first = await recv_until(ws, is_type("trip.updated"))
    second = await recv_until(ws, is_type("trip.updated"))
    assert (first["value"], second["value"]) == ("lost", "delivered")
    assert (first["seq"], second["seq"]) == (snapshot["seq"] + 1, snapshot["seq"] + 2)
    await ws.close()


async def test_viewer_receives_everything_but_cannot_edit(live, crew):
    alice, _, carol, trip = crew
    c, _ = await join(live, trip, carol)
    await send_json(c, update_msg("name", "Mine now", 1, id_="v1"))
    refused = await recv_json(c)
    assert refused["error"]["code"] == "AUTHORIZATION_FAILED" and refused["request_id"] == "v1"
    await send_json(c, {"type": "editing.start", "id": "v2", "field": "name"})
    assert (await recv_type(c, "error"))["error"]["code"] == "AUTHORIZATION_FAILED"
    a, _ = await join(live, trip, alice)
    await send_json(a, update_msg("name", "Alice's", 1))
    assert (await recv_until(c, is_type("trip.updated")))["value"] == "Alice's"
    assert (await get_trip(trip.pk)).name == "Alice's"
    await a.close()
    await c.close()


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (update_msg("budget", -5, 1), "budget"),
        (update_msg("currency", "euro", 1), "currency"),
        (update_msg("end_date", "not a date", 1), "end_date"),
        (update_msg("name", "x", 99), "base_version"),
        ({**update_msg("name", "x", 1), "base_version": "1"}, "base_version"),
        ({**update_msg("name", "x", 1), "field": "owner"}, "field"),
        ({**update_msg("name", "x", 1), "update_id": "not-a-uuid"}, "update_id"),
    ],
    ids=[
        "negative-budget",
        "bad-currency",
        "bad-date",
        "future-base",
        "string-base",
        "unknown-field",
        "bad-update-id",
    ],
)
async def test_bad_edits_get_invalid_message_format_naming_the_field(live, crew, message, field):
    alice, _, _, trip = crew
    ws, _ = await join(live, trip, alice)
    await send_json(ws, message)
    error = await recv_json(ws)
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert error["error"]["details"]["field"] == field
    assert (await get_trip(trip.pk)).version == 1
    await ws.close()


async def test_end_date_before_start_date_is_refused(live, crew):
    alice, _, _, trip = crew
    ws, _ = await join(live, trip, alice)
    await send_json(ws, update_msg("start_date", "2027-05-14", 1, id_="s"))
    await recv_until(ws, is_type("ack", request_id="s"))
    await send_json(ws, update_msg("end_date", "2027-05-01", 2, id_="e"))
    error = await recv_type(ws, "error")
    assert error["error"]["details"]["field"] == "end_date" and error["request_id"] == "e"
    assert (await get_trip(trip.pk)).end_date is None
    await ws.close()


async def test_a_rest_change_reaches_every_socket_like_a_socket_change(pair, crew):
    alice, bob, _, trip = crew
    a, _ = await join(pair[0], trip, alice)
    b, _ = await join(pair[1], trip, bob)

    def patch():
        client = APIClient()
        client.force_authenticate(bob)
        return client.patch(
            f"/api/trips/{trip.pk}/", {"destination": "Madeira"}, format="json", HTTP_IF_MATCH='"1"'
        )

    response = await sync_to_async(patch)()
    assert response.status_code == 200
    for ws in (a, b):
        event = await recv_until(ws, is_type("trip.updated", field="destination"))
        assert event["value"] == "Madeira" and event["by"]["username"] == "bob"
    await a.close()
    await b.close()


async def test_removed_member_is_disconnected(live, crew):
    alice, bob, _, trip = crew
    b, _ = await join(live, trip, bob)
    await sync_to_async(members.trip_member_remove)(trip_id=trip.pk, actor=alice, user=bob)
    code, messages = await closed_with(b)
    assert code == 4003
    assert messages[-2]["type"] == "member.removed"
    assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"


def _rest(server, user, method, path, body=None):
    """A REST call over HTTP to a daphne process, signed in as `user` with an access token."""
    request = urllib.request.Request(
        f"{server.http_url}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {factories.access_token(user)}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def _changes_seen_by(ws, marker_value):
    """What `ws` received up to the `trip.updated` of `marker_value` (an edit made after the
    refused ones, so everything they could have caused has arrived by then)."""
    seen = []
    while True:
        message = await recv_json(ws)
        seen.append(message)
        if message["type"] == "ping":
            await send_json(ws, {"type": "pong", "request_id": message["id"]})
        if message["type"] == "trip.updated" and message["value"] == marker_value:
            return seen


def _by(messages, username):
    """The edits, editing indicators and chat posts of `username` among `messages`."""
    return [
        m
        for m in messages
        if (m["type"] == "trip.updated" and m["by"]["username"] == username)
        or (m["type"] == "editing.update" and (username, "name") in editing(m))
        or (m["type"] == "chat.message" and m["message"]["author"]["username"] == username)
        or (m["type"] == "typing.update" and m["user"]["username"] == username)
    ]


@pytest.mark.parametrize("rest_on", ["same-process", "other-process"])
async def test_an_editor_made_viewer_while_connected_can_edit_no_more_and_keeps_reading(
    pair, crew, rest_on
):
    """The owner makes a connected editor a viewer over REST (handled by the editor's process, or
    by the other one): every edit the editor sends once the change is committed is refused with
    AUTHORIZATION_FAILED, nothing is written, the others see nothing of it, and the socket stays
    open and keeps receiving (a viewer may read)."""
    alice, bob, _, trip = crew
    rest_server, bob_server = (pair[1], pair[1]) if rest_on == "same-process" else pair
    a, _ = await join(pair[0], trip, alice)
    b, b_snapshot = await join(bob_server, trip, bob)
    assert b_snapshot["role"] == "editor"
    version = b_snapshot["trip"]["version"]

    status = await asyncio.to_thread(
        _rest, rest_server, alice, "POST", f"/api/trips/{trip.pk}/members/",
        {"username": "bob", "role": "viewer"},
    )  # fmt: skip
    assert status == 200
    # At once, without waiting for the socket to hear of it.
    await send_json(b, update_msg("name", "Bob's now", version, id_="edit-after"))
    await send_json(b, {"type": "editing.start", "id": "indicator-after", "field": "name"})
    refusals, told = {}, []
    while len(refusals) < 2:
        message = await recv_until(b, lambda m: m["type"] in ("error", "ack", "member.updated"))
        assert message["type"] != "ack", f"a viewer's edit was applied: {message}"
        if message["type"] == "error":
            refusals[message["request_id"]] = message["error"]
        else:
            told.append(message)
    assert {rid: e["code"] for rid, e in refusals.items()} == {
        "edit-after": "AUTHORIZATION_FAILED", "indicator-after": "AUTHORIZATION_FAILED"
    }  # fmt: skip
    assert (await get_trip(trip.pk)).name != "Bob's now"
    assert (await get_trip(trip.pk)).version == version

    # Still open, told its new role, and still reading what the others change.
    if not told:
        told.append(await recv_until(b, is_type("member.updated")))
    assert [(m["user"]["username"], m["role"]) for m in told] == [("bob", "viewer")]
    await send_json(a, update_msg("notes", "after bob's demotion", version, id_="marker"))
    seen_by_alice = await _changes_seen_by(a, "after bob's demotion")
    assert (await recv_until(b, is_type("trip.updated", field="notes")))["by"]["id"] == alice.pk
    assert b.close_code is None
    assert _by(seen_by_alice, "bob") == []
    fresh, snapshot = await join(pair[0], trip, alice)
    assert ("bob", "name") not in editing(snapshot)
    for ws in (a, b, fresh):
        await ws.close()


@pytest.mark.parametrize("rest_on", ["same-process", "other-process"])
async def test_a_member_removed_while_connected_is_refused_and_both_sockets_close(
    pair, crew, rest_on
):
    """The owner removes a connected editor over REST: whatever the editor sends once the removal
    is committed (an edit, an editing indicator, a chat post, typing) changes nothing anyone
    sees, and the member's trip and chat sockets close with AUTHORIZATION_FAILED and 4003."""
    alice, bob, _, trip = crew
    rest_server, bob_server = (pair[1], pair[1]) if rest_on == "same-process" else pair
    a, _ = await join(pair[0], trip, alice)
    a_chat, _ = await connect(pair[0].ws_url, f"/ws/chat/{trip.pk}/", await token_for(alice))
    b, b_snapshot = await join(bob_server, trip, bob)
    b_chat, _ = await connect(bob_server.ws_url, f"/ws/chat/{trip.pk}/", await token_for(bob))
    version = b_snapshot["trip"]["version"]

    status = await asyncio.to_thread(
        _rest, rest_server, alice, "DELETE", f"/api/trips/{trip.pk}/members/{bob.pk}/"
    )
    assert status == 204
    sent = [
        (b, update_msg("name", "Bob's now", version, id_="edit-after")),
        (b, {"type": "editing.start", "id": "indicator-after", "field": "name"}),
        (b_chat, {"type": "chat.send", "id": "post-after", "text": "still here"}),
        (b_chat, {"type": "typing.start", "id": "typing-after"}),
    ]
    for ws, message in sent:
        try:
            await send_json(ws, message)
        except ConnectionClosed:
            pass  # closed already: refused all the same
    for ws, closing in ((b, "member.removed"), (b_chat, None)):
        code, messages = await closed_with(ws)
        assert code == 4003
        assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"
        assert [m for m in messages if m["type"] == "ack"] == []
        for m in messages:
            if m["type"] == "error":
                assert m["error"]["code"] == "AUTHORIZATION_FAILED", m
        if closing:
            assert closing in [m["type"] for m in messages]

    current = await get_trip(trip.pk)
    assert current.name != "Bob's now" and current.version == version
    assert await sync_to_async(ChatMessage.objects.filter(author=bob).exists)() is False
    assert await sync_to_async(TripMember.objects.filter(trip=trip, user=bob).exists)() is False
    await send_json(a, update_msg("notes", "after bob left", version, id_="marker"))
    seen_by_alice = await _changes_seen_by(a, "after bob left")
    await send_json(a_chat, {"type": "chat.send", "id": "marker-chat", "text": "after bob left"})
    chat_seen = []
    while not chat_seen or chat_seen[-1].get("request_id") != "marker-chat":
        chat_seen.append(await recv_json(a_chat))
    assert _by(seen_by_alice + chat_seen, "bob") == []
    for ws in (a, a_chat):
        await ws.close()


def _losing(monkeypatch, *types):
    """The channel layer loses every published event of these types (it delivers at most once);
    returns what it lost."""
    lost = []
    real = broadcast._group_send

    def group_send(group, event):
        kind = json.loads(event["text"])["type"] if "text" in event else event["type"]
        if kind in types:
            lost.append(kind)
        else:
            real(group, event)

    monkeypatch.setattr(broadcast, "_group_send", group_send)
    return lost


async def test_a_demotion_whose_event_the_layer_lost_still_refuses_every_edit(
    live, crew, monkeypatch
):
    """The role is the database's, not what the socket last heard: with the `member.updated`
    lost on its way, the demoted editor's edits and editing indicators are still refused."""
    alice, bob, _, trip = crew
    a, _ = await join(live, trip, alice)
    b, b_snapshot = await join(live, trip, bob)
    version = b_snapshot["trip"]["version"]
    lost = _losing(monkeypatch, "member.updated")
    await sync_to_async(members.trip_member_set)(
        trip_id=trip.pk, actor=alice, user=bob, role="viewer"
    )
    assert lost == ["member.updated"]
    await send_json(b, update_msg("name", "Bob's now", version, id_="edit-after"))
    edit = await recv_until(b, lambda m: m["type"] in ("error", "ack"))
    assert edit["type"] == "error" and edit["error"]["code"] == "AUTHORIZATION_FAILED", edit
    await send_json(b, {"type": "editing.start", "id": "indicator-after", "field": "name"})
    await send_json(b, {"type": "echo", "id": "then"})
    answers = []
    while not answers or answers[-1]["type"] != "echo":
        answers.append(await recv_until(b, lambda m: m["type"] in ("error", "echo")))
    assert [(m["type"], m["request_id"]) for m in answers] == [
        ("error", "indicator-after"), ("echo", "then")
    ]  # fmt: skip
    assert answers[0]["error"]["code"] == "AUTHORIZATION_FAILED"
    fresh, snapshot = await join(live, trip, alice)
    assert ("bob", "name") not in editing(snapshot)
    assert (await get_trip(trip.pk)).version == version
    for ws in (a, b, fresh):
        await ws.close()


async def test_a_removal_whose_events_the_layer_lost_still_closes_both_sockets(
    daphne_factory, crew, monkeypatch
):
    """With `member.removed` and the chat's removal lost on their way, the removed member's
    trip and chat sockets still close (AUTHORIZATION_FAILED, 4003): the process's periodic
    re-check reads the memberships of its sockets (REALTIME_REVOCATION_CHECK_SECONDS). Before
    it, the chat socket went on reading the trip's chat for as long as it stayed open."""
    alice, bob, _, trip = crew
    server = await asyncio.to_thread(
        daphne_factory, "recheck", REALTIME_REVOCATION_CHECK_SECONDS="1"
    )
    b, _ = await join(server, trip, bob)
    b_chat, _ = await connect(server.ws_url, f"/ws/chat/{trip.pk}/", await token_for(bob))
    a_chat, _ = await connect(server.ws_url, f"/ws/chat/{trip.pk}/", await token_for(alice))
    lost = _losing(monkeypatch, "member.removed", "chat.member_removed")
    await sync_to_async(members.trip_member_remove)(trip_id=trip.pk, actor=alice, user=bob)
    assert sorted(lost) == ["chat.member_removed", "member.removed"]
    monkeypatch.undo()
    for ws in (b, b_chat):
        code, messages = await closed_with(ws)
        assert code == 4003
        assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"
        assert messages[-1]["error"]["message"] == "You are no longer a member of this trip."
    # The member who stays keeps the chat.
    await send_json(a_chat, {"type": "chat.send", "id": "still", "text": "after bob left"})
    assert (await recv_until(a_chat, is_type("ack", request_id="still")))["status"] == "posted"
    await a_chat.close()


async def test_a_client_that_stops_reading_is_cut_off_and_others_keep_flowing(daphne_factory, crew):
    """No unbounded queue: what a socket has not acknowledged (pong to the flow pings) is
    bounded; past it the socket is closed with 4009 and counted."""
    alice, bob, carol, trip = crew
    tight = await asyncio.to_thread(
        daphne_factory,
        "tight",
        REALTIME_FLOW_PING_BYTES="4096",
        REALTIME_MAX_UNACKED_BYTES="32768",
    )
    stalled, _ = await join(tight, trip, bob)  # reads nothing, answers no ping
    reader, _ = await join(tight, trip, carol)  # answers every ping (recv_until does)
    for i in range(16):
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes",
            value=f"{i} " + "x" * 3000, base_version=1,
        )  # fmt: skip
        await recv_until(reader, is_type("trip.updated"))
    code, messages = await closed_with(stalled)
    assert code == 4009
    assert messages[-1]["error"]["details"]["reason"] == "slow_consumer"
    assert reader.close_code is None
    closes = await asyncio.to_thread(
        tight.metric,
        "tripsage_ws_slow_consumer_closes_total",
        connection_type="trip_collaboration",
    )
    assert closes == 1.0
    await reader.close()


async def test_snapshot_lists_the_open_conflicts_that_involve_you(live, crew):
    alice, bob, carol, trip = crew
    for user, value in ((alice, "Lisbon"), (bob, "Porto")):
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=user, update_id=uuid.uuid4(), field="destination",
            value=value, base_version=1,
        )  # fmt: skip
    conflict = await sync_to_async(Conflict.objects.get)(trip=trip)
    for user, expected in ((alice, [conflict.pk]), (bob, [conflict.pk]), (carol, [])):
        ws, snapshot = await join(live, trip, user)
        assert [c["id"] for c in snapshot["conflicts"]] == expected
        await ws.close()


async def _commit_unpublished(monkeypatch, trip, actor, values):
    """Commit edits but keep their publications back, to send them in an order of our own."""
    held = []
    monkeypatch.setattr(broadcast, "_group_send", lambda group, event: held.append((group, event)))
    for value in values:
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=actor, update_id=uuid.uuid4(), field="destination",
            value=value, base_version=1,
        )  # fmt: skip
    monkeypatch.undo()
    return held


async def _updates_until_echo(ws):
    """Every trip.updated the socket gets before the answer to an echo sent now."""
    await send_json(ws, {"type": "echo", "id": "fence"})
    seen = []
    async with asyncio.timeout(10):
        while True:
            message = await recv_json(ws)
            if message["type"] == "ping":
                await send_json(ws, {"type": "pong", "request_id": message["id"]})
            elif message["type"] == "trip.updated":
                seen.append((message["seq"], message["value"]))
            elif message.get("request_id") == "fence":
                return seen


async def test_events_published_out_of_order_reach_each_socket_once_in_order(
    daphne_factory, crew, monkeypatch
):
    """Two commits publish from two threads, so Redis may carry them in either order. The
    layer puts them back in order for every member of the process: no gap, no database read,
    each event once."""
    alice, bob, _, trip = crew
    server = await asyncio.to_thread(daphne_factory, "reorder", CHANNEL_LAYER_REORDER_WAIT="5")
    ws, snapshot = await join(server, trip, bob)
    base = snapshot["seq"]
    gap_fills = await asyncio.to_thread(
        server.metric, "tripsage_ws_replays_total",
        connection_type="trip_collaboration", kind="gap_fill",
    )  # fmt: skip
    held = await _commit_unpublished(monkeypatch, trip, alice, ["Porto", "Lisbon"])
    for group, event in reversed(held):
        await sync_to_async(broadcast._group_send)(group, event)
    await recv_until(ws, is_type("trip.updated", seq=base + 2))
    assert await _updates_until_echo(ws) == []  # nothing more came after it
    assert await asyncio.to_thread(
        server.metric, "tripsage_ws_replays_total",
        connection_type="trip_collaboration", kind="gap_fill",
    ) == gap_fills  # fmt: skip
    await ws.close()


async def test_a_late_event_is_never_shown_twice_after_a_gap_fill(
    daphne_factory, crew, monkeypatch
):
    """With no wait for order, a socket that sees seq N+2 first reads N+1 from the log; N+1
    arriving meanwhile must not be written to the socket as well."""
    alice, bob, _, trip = crew
    server = await asyncio.to_thread(daphne_factory, "no-reorder", CHANNEL_LAYER_REORDER_WAIT="0")
    ws, snapshot = await join(server, trip, bob)
    base = snapshot["seq"]
    for round_ in range(3):
        values = [f"City {round_}a", f"City {round_}b"]
        held = await _commit_unpublished(monkeypatch, trip, alice, values)
        for group, event in reversed(held):
            await sync_to_async(broadcast._group_send)(group, event)
        first = base + 2 * round_
        seen = [await recv_until(ws, is_type("trip.updated"))]
        if seen[0]["seq"] != first + 2:
            seen.append(await recv_until(ws, is_type("trip.updated")))
        seen = [(m["seq"], m["value"]) for m in seen] + await _updates_until_echo(ws)
        assert seen == [(first + 1, values[0]), (first + 2, values[1])]
    await ws.close()


@pytest.mark.parametrize("value", ["a\u0000b", "pack \ud800 socks"])
async def test_an_edit_the_database_would_refuse_is_the_fields_error_and_the_socket_lives_on(
    live, crew, value
):
    alice, _, _, trip = crew
    ws, _ = await join(live, trip, alice)
    await send_json(ws, update_msg("notes", value, 1, id_="bad"))
    error = await recv_until(ws, is_type("error", request_id="bad"))
    assert error["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    assert error["error"]["details"] == {"reason": "invalid_value", "field": "notes"}
    await send_json(ws, update_msg("notes", "fine", 1, id_="good"))
    assert (await recv_until(ws, is_type("ack", request_id="good")))["status"] == "applied"
    assert (await get_trip(trip.pk)).notes == "fine"
    await ws.close()
