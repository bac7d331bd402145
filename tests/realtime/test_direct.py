"""Direct writes (realtime.direct): frames written straight to daphne's sockets arrive whole and in
order, also when the kernel's buffer is full and Twisted takes over part of the stream."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import pytest
import websockets
from asgiref.sync import sync_to_async
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from collaboration.services import trips
from realtime.direct import text_frame
from tests import factories
from tests.wsclient import recv_json, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_text_frames_parse_as_rfc6455(size):
    """Read back by an independent parser (websockets', as a client reads a server's frames)."""
    text = ("é" + "x" * size)[:size]  # non-ASCII: the length is in bytes, not characters
    reader = StreamReader()
    reader.feed_data(text_frame(text))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode == Opcode.TEXT and frame.fin
    assert frame.data.decode() == text
    assert reader.at_eof() is not False  # nothing left over after the frame


async def _stalled_socket(server, path: str, token: str):
    """A client with a tiny receive buffer that reads nothing after its opening messages (its
    library stops reading past one queued message)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    host, port = server.ws_url.removeprefix("ws://").split(":")
    await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
    ws = await websockets.connect(f"{server.ws_url}{path}", sock=raw, max_queue=1)
    await send_json(ws, {"token": token})
    assert (await recv_json(ws))["type"] == "connection.established"
    assert (await recv_json(ws))["type"] == "rate_limit_status"
    assert (await recv_json(ws))["type"] == "trip.snapshot"
    return ws


def _direct_writes(server) -> dict[str, float]:
    return {
        outcome: server.metric("tripsage_ws_direct_writes_total", outcome=outcome)
        for outcome in ("sent", "partial", "declined")
    }


@pytest.mark.parametrize("direct", [True, False], ids=["direct-writes", "asgi-sends"])
async def test_a_full_socket_gets_every_event_whole_and_in_order(daphne_factory, direct):
    server = await asyncio.to_thread(
        daphne_factory,
        f"wire-{'on' if direct else 'off'}",
        REALTIME_DIRECT_WRITES="true" if direct else "false",
        REALTIME_FLOW_PING_BYTES=str(64 << 20),  # no flow pings: the stalled client answers none
        REALTIME_MAX_UNACKED_BYTES=str(64 << 20),
    )
    alice, bob, carol, trip = await sync_to_async(factories.make_crew)()
    path = f"/ws/trips/{trip.pk}/"
    stalled = await _stalled_socket(server, path, factories.access_token(bob))
    reader = await _stalled_socket(server, path, factories.access_token(carol))
    # 300 events of 20 kB (non-ASCII): 6 MB, more than the kernel buffers on loopback (at most
    # 4 MB to send here), so writes to the stalled socket end up partial and then buffered.
    values = [f"{i:03d} " + chr(0x3B1 + i % 20) * 9_990 for i in range(300)]

    for value in values:
        await sync_to_async(trips.trip_update)(
            trip_id=trip.pk, actor=alice, update_id=uuid.uuid4(), field="notes", value=value,
            base_version=1,
        )  # fmt: skip
        # The other member reads along: one stalled socket holds nobody else up.
        event = await recv_until(reader, lambda m: m["type"] == "trip.updated")
        assert event["value"] == value

    received = []
    async with asyncio.timeout(20):
        while len(received) < len(values):
            message = json.loads(await stalled.recv())
            if message["type"] == "trip.updated":
                received.append(message)
    assert [m["value"] for m in received] == values
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(values)))

    counted = await asyncio.to_thread(_direct_writes, server)
    if direct:
        # Written straight to the sockets, and the full one was handed to Twisted part-way.
        assert counted["sent"] > 0 and counted["partial"] > 0 and counted["declined"] > 0
    else:
        assert counted == {"sent": 0, "partial": 0, "declined": 0}
    await stalled.close()
    await reader.close()
