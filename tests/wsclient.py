"""A real WebSocket client for tests, speaking the protocol like the seed's client does.

`frame_check` checks every frame a test receives from the server against protocol.server's
schemas: from this client (any `websockets` client connection: tests/conftest.py wraps `recv`),
from Channels' WebsocketCommunicator (tests/conftest.py) and in Playwright's pages
(tests/browser/conftest.py). A frame that fits no schema fails the test that received it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

import protocol
from protocol import ConnectionType

TIMEOUT = 10.0

# The routes (realtime/routing.py), to check a frame against what its connection type sends.
CONNECTION_TYPES = {
    "/ws/trips/": ConnectionType.TRIP_COLLABORATION,
    "/ws/chat/": ConnectionType.CHAT,
    "/ws/notifications/": ConnectionType.NOTIFICATIONS,
    "/ws/agent-status/": ConnectionType.AGENT_STATUS,
}


def connection_type_of(url_or_path: str) -> ConnectionType | None:
    """The connection type a path (or a ws:// URL) leads to; None for a route of a test's own."""
    path = urlsplit(url_or_path).path
    for prefix, kind in CONNECTION_TYPES.items():
        if path.startswith(prefix):
            return kind
    return None


class FrameCheck:
    """Checks server frames and keeps what did not fit, for the test's teardown: a check that
    raises in a task or thread whose exceptions nobody reads still fails the test."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._lock = threading.Lock()  # frames arrive from test threads and Playwright too

    def __call__(self, frame: str | bytes, where: str | None = None) -> None:
        """Raise AssertionError (and remember it) unless `frame` is a server message that fits
        its schema, among those of the connection type `where` (a path or URL) leads to."""
        try:
            text = frame.decode() if isinstance(frame, bytes) else frame
            message = json.loads(text)
            kind = connection_type_of(where) if where else None
            protocol.check_server_message(message, kind)
        except (ValueError, protocol.InvalidServerMessage) as exc:
            failure = f"{where or 'a socket'}: {exc} Frame: {frame!r:.300}"
            with self._lock:
                self.failures.append(failure)
            raise AssertionError(failure) from None

    def take(self) -> list[str]:
        with self._lock:
            failures, self.failures = self.failures, []
        return failures


frame_check = FrameCheck()
_recv = ClientConnection.recv


async def checked_recv(self: ClientConnection, decode: bool | None = None) -> Any:
    """ClientConnection.recv, with `frame_check` on what it returns (iteration uses it too)."""
    frame = await _recv(self, decode)
    frame_check(frame, self.request.path if self.request is not None else None)
    return frame


async def open_socket(
    base_url: str, path: str, *, origin: str | None = None, query: str = ""
) -> ClientConnection:
    url = f"{base_url}{path}" + (f"?{query}" if query else "")
    headers = {"Origin": origin} if origin else None
    # Unbounded: a test that leaves events unread still sees the close frame at once (with the
    # default 16 frames the client stops reading and each close waited its 10 s timeout).
    return await websockets.connect(
        url, additional_headers=headers, open_timeout=TIMEOUT, max_queue=None
    )


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws: ClientConnection, type_: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next message of `type_`, answering the server's pings on the way."""
    async with asyncio.timeout(timeout):
        while True:
            message = await recv_json(ws, timeout)
            if message["type"] == type_:
                return message
            if message["type"] == "ping":
                await send_json(ws, {"type": "pong", "request_id": message["id"]})


async def send_json(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


OPENINGS = {
    "/ws/trips/": "trip.snapshot",
    "/ws/chat/": "chat.history",
    "/ws/notifications/": "notifications.unread",
    "/ws/agent-status/": "agent.runs",
}


async def connect(
    base_url: str, path: str, token: str, *, request_id: str = "auth-1"
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open, authenticate as the seed's client does, and return the `connection.established`.
    The `rate_limit_status` that follows is read as `ws.rate_limit`, then the connection type's
    opening message as `ws.opening` (a trip's `trip.snapshot` also as `ws.snapshot`)."""
    ws = await open_socket(base_url, path)
    await send_json(ws, {"token": token, "id": request_id})
    established = await recv_json(ws)
    assert established["type"] == "connection.established", established
    ws.rate_limit = await recv_json(ws)
    assert ws.rate_limit["type"] == "rate_limit_status", ws.rate_limit
    # Then the connection type's own opening message.
    ws.opening = None
    for prefix, opening in OPENINGS.items():
        if path.startswith(prefix):
            ws.opening = await recv_json(ws)
            assert ws.opening["type"] == opening, ws.opening
    ws.snapshot = ws.opening if path.startswith("/ws/trips/") else None
    return ws, established


async def closed_with(ws: ClientConnection, timeout: float = TIMEOUT) -> tuple[int, list[dict]]:
    """Read until the server closes; return the close code and the messages before it."""
    messages = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                messages.append(json.loads(await ws.recv()))
    except ConnectionClosed:
        pass
    assert ws.close_code is not None, "server did not close the socket"
    return ws.close_code, messages


async def recv_until(
    ws: ClientConnection, predicate: Any, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The first message for which `predicate(message)` is true, answering pings on the way."""
    async with asyncio.timeout(timeout):
        while True:
            message = await recv_json(ws, timeout)
            if message["type"] == "ping":
                await send_json(ws, {"type": "pong", "request_id": message["id"]})
            if predicate(message):
                return message


def collaborators(message: dict[str, Any]) -> dict[str, int]:
    """username -> connections, from a snapshot or a presence.update."""
    return {c["user"]["username"]: c["connections"] for c in message["collaborators"]}


def editing(message: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["user"]["username"], e["field"]) for e in message["editing"]}
