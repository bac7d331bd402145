"""What the WebSocket handshake of a real daphne process leaves out: obsolete protocol versions,
compression, and cookies as credentials (docs/security.md, CS-2, CS-3 and CS-7)."""

from __future__ import annotations

import asyncio
import base64
import os
import urllib.request

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client

from tests import factories
from tests.wsclient import TIMEOUT, recv_json, send_json

pytestmark = pytest.mark.django_db(transaction=True)


async def _handshake_status(server, path: str, version_headers: str) -> int:
    """The HTTP status daphne answers a hand-written upgrade request with."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"{version_headers}\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    writer.close()
    return int(status_line.split()[1])


async def test_a_handshake_of_an_obsolete_protocol_version_is_refused(live):
    path = "/ws/notifications/"
    assert await _handshake_status(live, path, "Sec-WebSocket-Version: 13\r\n") == 101
    # hybi-00 / Hixie-76 (two keys, no version) and any version but 13 and 8.
    hixie = "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
    assert await _handshake_status(live, path, hixie) == 400
    assert await _handshake_status(live, path, "Sec-WebSocket-Version: 0\r\n") == 400


async def test_a_client_offering_compression_gets_none(live):
    ws = await websockets.connect(f"{live.ws_url}/ws/notifications/", compression="deflate")
    assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
    assert ws.response.status_code == 101
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    await ws.close()


async def test_a_signed_in_sessions_cookie_does_not_authenticate_a_socket(live):
    await sync_to_async(factories.make_user)("alice")

    def sign_in() -> str:
        client = Client()
        assert client.login(username="alice", password=factories.PASSWORD)
        return f"sessionid={client.cookies['sessionid'].value}"

    cookie = await sync_to_async(sign_in)()
    # The cookie is a live session of this server: its pages know alice by it...
    request = urllib.request.Request(
        f"{live.http_url}/trips/session-token/", headers={"Cookie": cookie}
    )
    answer = await asyncio.to_thread(urllib.request.urlopen, request, timeout=TIMEOUT)
    assert answer.status == 200
    # ...but a socket opened with it, from the site's own origin, is still asked for a token.
    ws = await websockets.connect(
        f"{live.ws_url}/ws/notifications/",
        additional_headers={"Cookie": cookie, "Origin": live.http_url},
        open_timeout=TIMEOUT,
    )
    await send_json(ws, {"type": "ping", "id": "p-1"})
    refused = await recv_json(ws)
    assert refused["error"]["code"] == "AUTHENTICATION_FAILED"
    assert refused["error"]["details"]["reason"] == "not_authenticated"
    await ws.close()
