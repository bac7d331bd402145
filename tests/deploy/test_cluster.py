"""The local topology through its one URL: people on different processes behind nginx see each
other's edits, presence and chat; a process killed mid-edit costs its clients a reconnect through
the proxy to another process and a `resume`, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.cluster import LISTEN_BACKLOG, Cluster
from tests.chaos.views import edit, token_for
from tests.deploy.conftest import LiveEdits, TripClient, bounded, upstream_of
from tests.wsclient import connect, recv_json, send_json

SOMAXCONN = int(Path("/proc/sys/net/core/somaxconn").read_text())

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


@bounded(100)
async def test_killed_process_clients_resume_through_the_proxy_with_nothing_lost(
    cluster_healed: Cluster, crew
):
    alice, bob, carol, trip = crew
    people = [await TripClient(cluster_healed, trip, user).open() for user in (alice, bob, carol)]
    assert len({client.upstream for client in people}) >= 2, [c.upstreams for c in people]
    victim = cluster_healed.process_at(people[1].upstream)  # bob's: an editor on it
    on_victim = [client for client in people if client.upstream == people[1].upstream]

    async with LiveEdits(people) as edits:
        await edits.until_each_acked(3)
        victim.kill()  # SIGKILL, mid-edit: no handler runs on it
        await edits.until_each_acked(edits.most_acked() + 5)
        await edits.finish()
        await asyncio.wait_for(asyncio.gather(*(c.resumed.wait() for c in on_victim)), 30)

    # Every client on the killed process came back through the proxy, on another process.
    for client in on_victim:
        assert len(client.upstreams) >= 2, client.upstreams
        assert all(cluster_healed.process_at(up) is not victim for up in client.upstreams[1:])

    await edits.assert_nothing_lost(trip.pk)

    # And presence is exact again: the killed process's sockets expired, the new ones count.
    everyone = {"alice": 1, "bob": 1, "carol": 1}
    for client in people:
        await client.view.until(lambda v: v.collaborators == everyone, 15)


def test_processes_queue_a_reconnect_storm_instead_of_refusing_it(
    cluster_healed: Cluster,
) -> None:
    """Each daphne process listens with a backlog of LISTEN_BACKLOG (Twisted's default is 50,
    which a reconnect storm overflows: each refused SYN waits out the client's retransmission),
    and the image's command says the same."""
    for process in cluster_healed.processes:
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{process.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        # State, Recv-Q, Send-Q (for a listening socket: its backlog), ...
        assert int(listening[2]) == min(LISTEN_BACKLOG, SOMAXCONN), listening
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert f"backlog={LISTEN_BACKLOG}" in dockerfile
