"""The local topology through its one URL: people on different processes behind nginx see each
other's edits, presence and chat; a process killed mid-edit costs its clients a reconnect through
the proxy to another process and a `resume`, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from deploy.cluster import Cluster
from tests.chaos.views import database_state, edit, token_for
from tests.deploy.conftest import TripClient, upstream_of
from tests.wsclient import connect, recv_json, send_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_pages_rest_static_files_and_the_health_check_answer_through_the_one_url(
    cluster_healed: Cluster,
):
    served = set()
    for path in ["/", "/healthz", "/api/schema/", "/admin/login/",
                 "/static/tripsage/js/index.js"]:  # fmt: skip
        with urllib.request.urlopen(f"{cluster_healed.url}{path}", timeout=10) as response:
            assert response.status == 200, path
            served.add(cluster_healed.process_at(response.headers["X-Upstream"]).name)
    assert len(served) >= 2  # spread across processes, not pinned to one


async def test_people_on_different_processes_see_each_others_edits_presence_and_chat(
    cluster_healed: Cluster, crew
):
    alice, bob, carol, trip = crew
    people = [await TripClient(cluster_healed, trip, user).open() for user in (alice, bob, carol)]
    assert len({client.upstream for client in people}) >= 2, [c.upstreams for c in people]
    everyone = {"alice": 1, "bob": 1, "carol": 1}
    for client in people:
        await client.view.until(lambda v: v.collaborators == everyone, 10)

    by_alice, by_bob = people[0], people[1]
    await edit(by_alice.view, "name", "Porto instead", "alice-1", timeout=10)
    await edit(by_bob.view, "notes", "Trains booked", "bob-1", timeout=10)
    for client in people:
        await client.view.until(
            lambda v: (v.fields["name"], v.fields["notes"]) == ("Porto instead", "Trains booked"),
            10,
        )

    # Chat: each person's chat socket, on whichever process nginx chose, gets every message.
    chats = []
    for user in (alice, bob, carol):
        ws, _ = await connect(cluster_healed.ws_url, f"/ws/chat/{trip.pk}/", await token_for(user))
        chats.append(ws)
    assert len({upstream_of(ws) for ws in chats}) >= 2
    for n, ws in enumerate(chats):
        await send_json(ws, {"type": "chat.send", "id": f"post-{n}", "text": f"hello from {n}",
                             "client_id": str(uuid.uuid4())})  # fmt: skip
    for ws in chats:
        seen: dict[int, str] = {}  # seq -> text, from its own ack or a chat.message
        async with asyncio.timeout(10):
            while len(seen) < len(chats):
                message = await recv_json(ws)
                if message["type"] == "ping":
                    await send_json(ws, {"type": "pong", "request_id": message["id"]})
                elif message["type"] == "ack":
                    assert message["status"] == "posted", message
                    seen[message["seq"]] = message["message"]["text"]
                elif message["type"] == "chat.message":
                    seen[message["seq"]] = message["message"]["text"]
        assert sorted(seen.values()) == [f"hello from {n}" for n in range(len(chats))]

    # Leaving on one process is seen on the others.
    await people[2].view.ws.close()
    for client in people[:2]:
        await client.view.until(lambda v: v.collaborators == {"alice": 1, "bob": 1}, 10)


async def edit_until(
    client: TripClient, field: str, acked: list[int], enough: asyncio.Event
) -> None:
    """Edit `field` one change after another, as the seed's client does: an edit whose socket
    dropped before its ack is sent again, unchanged (same update_id), after the reconnect and
    resume. Every ack's seq goes to `acked`; stops once `enough` is set."""
    number = 0
    while not enough.is_set():
        number += 1
        request_id = f"{client.username}-{number}"
        message = {"type": "trip.update", "id": request_id, "update_id": str(uuid.uuid4()),
                   "field": field, "value": f"{client.username} #{number}",
                   "base_version": client.view.version}  # fmt: skip
        while True:
            try:
                await send_json(client.view.ws, message)
                answer = await client.view.read(
                    lambda m, rid=request_id: m.get("request_id") == rid, 10
                )
                break
            except ConnectionClosed:
                await client.reopen()
        assert answer["type"] == "ack", answer
        assert answer["status"] in ("applied", "duplicate"), answer  # one field per editor
        acked.append(answer["seq"])


async def watch(client: TripClient) -> None:
    """Read what arrives, as a page does, reconnecting and resuming when the socket drops."""
    while True:
        try:
            await client.view.read(lambda m: False, 3600)
        except ConnectionClosed:
            await client.reopen()


async def settle(client: TripClient, db_seq: int) -> None:
    """Read until the client shows `db_seq`, reconnecting and resuming if its socket dropped
    while it was only watching."""
    while True:
        try:
            if client.view.seq < db_seq:
                await client.view.read(lambda m: client.view.seq >= db_seq, 10)
            return
        except ConnectionClosed:
            await client.reopen()


async def test_killed_process_clients_resume_through_the_proxy_with_nothing_lost(
    cluster_healed: Cluster, crew
):
    alice, bob, carol, trip = crew
    people = [await TripClient(cluster_healed, trip, user).open() for user in (alice, bob, carol)]
    assert len({client.upstream for client in people}) >= 2, [c.upstreams for c in people]
    victim = cluster_healed.process_at(people[1].upstream)  # bob's: an editor on it
    on_victim = [client for client in people if client.upstream == people[1].upstream]

    acked: dict[str, list[int]] = {"alice": [], "bob": []}
    enough = asyncio.Event()
    editors = [
        asyncio.create_task(edit_until(people[0], "name", acked["alice"], enough)),
        asyncio.create_task(edit_until(people[1], "notes", acked["bob"], enough)),
    ]
    watching = asyncio.create_task(watch(people[2]))  # carol, a viewer, reads meanwhile

    async def until_each_acked(count: int) -> None:
        while min(len(seqs) for seqs in acked.values()) < count:
            done = [task for task in editors if task.done()]
            for task in done:
                task.result()  # an editor that failed fails the test here
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(until_each_acked(3), 30)
        before = {name: len(seqs) for name, seqs in acked.items()}
        victim.kill()  # SIGKILL, mid-edit: no handler runs on it
        await asyncio.wait_for(until_each_acked(max(before.values()) + 5), 60)
        enough.set()
        await asyncio.wait_for(asyncio.gather(*editors), 30)
        await asyncio.wait_for(asyncio.gather(*(c.resumed.wait() for c in on_victim)), 30)
    finally:
        for task in [*editors, watching]:
            task.cancel()
        await asyncio.gather(*editors, watching, return_exceptions=True)

    # Every client on the killed process came back through the proxy, on another process.
    for client in on_victim:
        assert len(client.upstreams) >= 2, client.upstreams
        assert all(cluster_healed.process_at(up) is not victim for up in client.upstreams[1:])

    db_fields, db_seq, logged = await database_state(trip.pk)
    all_acked = acked["alice"] + acked["bob"]
    assert set(all_acked) <= set(logged)
    for client in people:
        await settle(client, db_seq)
        assert (client.view.fields, client.view.seq) == (db_fields, db_seq), client.username
        # Every acknowledged edit was shown, in order, each once (TripView checks the order).
        assert set(all_acked) <= set(client.view.seqs), client.username
    assert db_fields["name"] == f"alice #{len(acked['alice'])}"
    assert db_fields["notes"] == f"bob #{len(acked['bob'])}"

    # And presence is exact again: the killed process's sockets expired, the new ones count.
    everyone = {"alice": 1, "bob": 1, "carol": 1}
    for client in people:
        await client.view.until(lambda v: v.collaborators == everyone, 15)
