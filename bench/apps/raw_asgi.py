"""Reference 1, the practical ceiling: a raw ASGI broadcast app (no framework), run under the
same daphne. First message authenticates (the JWT is decoded, as ours does); `trip.update` is
acknowledged and published once to Redis; one subscription per process writes the pre-encoded
text to every local socket of the room."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import jwt
import redis.asyncio as aioredis

SECRET = os.environ["JWT_SIGNING_KEY"]  # the service's JWT key, as tripsage signs with
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("CHANNEL_LAYER_PREFIX", "bench") + "-raw"

rooms: dict[str, set[Any]] = {}
_state: dict[str, Any] = {}


async def _subscriber() -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{PREFIX}:*")
    _state["ready"].set()
    async for item in pubsub.listen():
        if item["type"] != "pmessage":
            continue
        room = item["channel"].decode().split(":", 1)[1]
        text = item["data"].decode()
        for send in list(rooms.get(room, ())):
            await send({"type": "websocket.send", "text": text})


async def _publisher() -> Any:
    if "task" not in _state:
        _state["ready"] = asyncio.Event()
        _state["task"] = asyncio.get_running_loop().create_task(_subscriber())
        _state["client"] = aioredis.Redis.from_url(REDIS_URL)
    await _state["ready"].wait()
    return _state["client"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    client = await _publisher()
    room = scope["path"].strip("/").replace("/", "-")
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    first = await receive()
    claims = jwt.decode(json.loads(first["text"])["token"], SECRET, algorithms=["HS256"])
    established = {"type": "connection.established", "user": claims["user_id"]}
    await send({"type": "websocket.send", "text": json.dumps(established)})
    await send({"type": "websocket.send", "text": json.dumps({"type": "trip.snapshot"})})
    rooms.setdefault(room, set()).add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = json.loads(message["text"])
            if data.get("type") != "trip.update":
                continue
            seq = await client.incr(f"{PREFIX}-seq-{room}")
            event = {
                "type": "trip.updated",
                "seq": seq,
                "update_id": data["update_id"],
                "field": data["field"],
                "value": data["value"],
                "by": claims["user_id"],
            }
            ack = {"type": "ack", "update_id": data["update_id"], "status": "applied", "seq": seq}
            await send({"type": "websocket.send", "text": json.dumps(ack)})
            await client.publish(f"{PREFIX}:{room}", json.dumps(event))
    finally:
        rooms[room].discard(send)
