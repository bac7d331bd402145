"""A real WebSocket client for tests, speaking the protocol like the seed's client does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


async def open_socket(
    base_url: str, path: str, *, origin: str | None = None, query: str = ""
) -> ClientConnection:
    url = f"{base_url}{path}" + (f"?{query}" if query else "")
    headers = {"Origin": origin} if origin else None
    return await websockets.connect(url, additional_headers=headers, open_timeout=TIMEOUT)


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
