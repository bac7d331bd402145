"""One socket's figures (the seed's ConnectionMetrics): every frame that crossed the socket, each
way, in UTF-8 bytes, so that a client counting its own frames gets the same numbers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.exceptions import ConnectionClosed

from metrics.models import ConnectionSession
from metrics.services import request_disconnect
from tests import factories
from tests.wsclient import TIMEOUT, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

# Rows refreshed at every flush, and flushed often: a row is at most a moment behind its socket.
FRESH = {"METRICS_FLUSH_SECONDS": "0.2", "METRICS_LIVE_REFRESH_SECONDS": "0"}
TEXT = "Zürich ✈ 東京 🧳"  # 1, 2, 3 and 4 UTF-8 bytes per character


@pytest.fixture(scope="module")
def fresh(daphne_factory):
    return daphne_factory("metrics-socket", **FRESH)


class Tally:
    """A socket's frames as its client saw them: text frames each way, and their UTF-8 bytes.
    A reader task takes every frame the server sends, answering its pings as a client must."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sent = self.bytes_sent = self.received = self.bytes_received = 0
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)  # as a browser's JSON.stringify does
        await self.ws.send(text)
        self.sent += 1
        self.bytes_sent += len(text.encode())

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.received += 1
                self.bytes_received += len(text.encode() if isinstance(text, str) else text)
                message = json.loads(text)
                self.messages.append(message)
                if message["type"] == "ping":
                    await self.send({"type": "pong", "request_id": message["id"]})
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def reply(self, request_id: str) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in self.messages:
                    if message.get("request_id") == request_id:
                        return message
                await asyncio.sleep(0.02)

    def figures(self) -> dict[str, int]:
        """What the server must have counted for this socket, from its side."""
        return {
            "messages_received": self.sent,
            "bytes_received": self.bytes_sent,
            "messages_sent": self.received,
            "bytes_sent": self.bytes_received,
        }


async def agreed(cid: str, tally: Tally, *, ended: bool = False, timeout: float = 10.0) -> Any:
    """The socket's row once it holds what the client counted (the flush is a moment behind);
    fails with both sides' figures if it never does."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while True:
        row = await sync_to_async(ConnectionSession.objects.filter(connection_id=cid).first)()
        expected = tally.figures()
        if row is not None:
            seen = {key: getattr(row, key) for key in expected}
            if seen == expected and (row.ended_at is not None) == ended:
                return row
        assert time.monotonic() < deadline, f"server {seen} != client {expected}"
        await asyncio.sleep(0.1)


async def test_a_sockets_row_counts_every_frame_each_way_in_utf8_bytes(fresh):
    alice, _, _, trip = await sync_to_async(factories.make_crew)()
    ws = await open_socket(fresh.ws_url, f"/ws/trips/{trip.pk}/")
    tally = Tally(ws)
    tally.start()
    # The token frame crosses the socket like any other: the server counts it too.
    await tally.send({"token": factories.access_token(alice), "id": "auth-1"})
    established = await tally.reply("auth-1")
    cid = established["connection_id"]
    await tally.send({"type": "echo", "id": "e-1", "data": TEXT})
    echoed = await tally.reply("e-1")
    assert echoed["data"] == TEXT
    await tally.send({"type": "no.such.type", "id": "bad-1"})
    assert (await tally.reply("bad-1"))["type"] == "error"

    row = await agreed(cid, tally)
    assert row.errors == 1

    # An operator's disconnect: its envelope is the socket's last frame, counted in the final row.
    await sync_to_async(request_disconnect)([cid])
    await asyncio.wait_for(tally.closed.wait(), TIMEOUT)
    assert tally.messages[-1]["error"]["details"]["reason"] == "closed_by_operator"
    row = await agreed(cid, tally, ended=True)
    assert row.close_code == 4010 and row.errors == 1
