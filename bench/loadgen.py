"""Load generator processes: receivers, open-loop senders, connect storms, closed-loop editors.

Each runs in its own process with its own event loop and talks to the harness over a Pipe.
Senders stamp every edit with its *intended* send time (wall clock, shared by processes on one
machine), so a slow server shows as latency, not as a slower sender.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench import fastws


def _commands(conn: Connection, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Any]:
    """Pipe commands from the harness, delivered into the loop by a reader thread."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def reader() -> None:
        while True:
            try:
                item = conn.recv()
            except EOFError:
                item = ("close",)
            loop.call_soon_threadsafe(queue.put_nowait, item)
            if item[0] == "close":
                return

    threading.Thread(target=reader, daemon=True).start()
    return queue


def _pong(ws: fastws.FastWebSocket, payload: bytes) -> None:
    ws.send_text(json.dumps({"type": "pong", "request_id": json.loads(payload)["id"]}))


async def _open(
    target: tuple[str, int], path: str, token: str, on_text: Any
) -> fastws.FastWebSocket:
    """Connect and authenticate; resolves once the server's snapshot (or equivalent) arrived."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def handler(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if not ready.done() and b"trip.snapshot" in payload:
            ready.set_result(None)
            return
        if not ready.done() and b'"type":"error"' in payload:
            ready.set_exception(RuntimeError(payload[:300].decode(errors="replace")))
            return
        on_text(ws, payload)

    ws = await fastws.connect(target[0], target[1], path, handler)
    ws.send_text(json.dumps({"token": token}))
    await asyncio.wait_for(ready, 60)
    return ws


async def _open_many(
    targets: list[tuple[str, int]], path: str, tokens: list[str], on_text: Any, concurrency: int
) -> tuple[list[fastws.FastWebSocket], list[str]]:
    limit = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(i: int, token: str) -> fastws.FastWebSocket | None:
        async with limit:
            try:
                return await _open(targets[i % len(targets)], path, token, on_text)
            except Exception as exc:  # reported, not raised: a failed connect is a result
                errors.append(repr(exc)[:200])
                return None

    sockets = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return [s for s in sockets if s is not None], errors


# -- receivers ---------------------------------------------------------------------------------


def receivers(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_receivers(conn, spec))


async def _receivers(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    latencies = array("d")
    close_codes: Counter[int] = Counter()

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if b"trip.updated" in payload:
            start = payload.find(b'"s:')
            if start >= 0:
                end = payload.find(b":", start + 3)
                latencies.append((time.time() - float(payload[start + 3 : end])) * 1000)
        elif b'"type":"ping"' in payload:
            _pong(ws, payload)

    sockets, errors = await _open_many(
        spec["targets"], spec["path"], spec["tokens"], on_text, spec.get("concurrency", 50)
    )
    conn.send(("ready", len(sockets), errors))
    while True:
        command = await commands.get()
        if command[0] == "reset":
            del latencies[:]
        elif command[0] == "count":
            conn.send(("count", len(latencies)))
        elif command[0] == "collect":
            for ws in sockets:
                if ws.closed.done():
                    close_codes[ws.closed.result()] += 1
            conn.send(("result", latencies.tobytes(), dict(close_codes)))
        elif command[0] == "close":
            for ws in sockets:
                ws.close()
            await asyncio.sleep(0.2)
            return


# -- open-loop senders -------------------------------------------------------------------------


def senders(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_senders(conn, spec))


async def _senders(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    outcome: Counter[str] = Counter()

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        if b'"type":"ack"' in payload or b'"type": "ack"' in payload:
            outcome["applied" if b"applied" in payload else "refused"] += 1
        elif b'"type":"error"' in payload:
            outcome["error"] += 1
        elif b'"type":"ping"' in payload:
            _pong(ws, payload)

    sockets, errors = await _open_many(spec["targets"], spec["path"], spec["tokens"], on_text, 10)
    conn.send(("ready", len(sockets), errors))
    while True:
        command = await commands.get()
        if command[0] == "send":
            _, rate, duration = command
            count = int(rate * duration)
            start = time.time() + 0.2
            for i in range(count):
                due = start + i / rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                which = i % len(sockets)
                sockets[which].send_text(
                    json.dumps(
                        {
                            "type": "trip.update",
                            "update_id": str(uuid.uuid4()),
                            "field": spec["fields"][which],
                            "value": f"s:{due:.6f}:{i}",
                            "base_version": 1,
                        }
                    )
                )
                outcome["sent"] += 1
            conn.send(("sent", count))
        elif command[0] == "collect":
            conn.send(("result", dict(outcome)))
            outcome.clear()
        elif command[0] == "close":
            for ws in sockets:
                ws.close()
            return


# -- connect storm -----------------------------------------------------------------------------


def storm(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_storm(conn, spec))


async def _storm(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    conn.send(("ready", 0, []))
    await commands.get()  # go
    started = time.time()
    sockets, errors = await _open_many(
        spec["targets"], spec["path"], spec["tokens"], lambda ws, p: None, spec["concurrency"]
    )
    finished = time.time()
    conn.send(("result", started, finished, len(sockets), errors))
    await commands.get()  # close
    for ws in sockets:
        ws.close()
    await asyncio.sleep(0.2)


# -- closed-loop editors (persisted edits per second) ------------------------------------------


def editors(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_editors(conn, spec))


async def _editors(conn: Connection, spec: dict[str, Any]) -> None:
    commands = _commands(conn, asyncio.get_running_loop())
    acks: dict[fastws.FastWebSocket, asyncio.Future[bool]] = {}

    def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
        waiting = acks.get(ws)
        if waiting is not None and not waiting.done() and b'"type":"ack"' in payload:
            waiting.set_result(b'"applied"' in payload)
        elif b'"type":"ping"' in payload:
            _pong(ws, payload)

    sockets = []
    for path, token in zip(spec["paths"], spec["tokens"], strict=True):
        sockets.append(await _open(spec["targets"][0], path, token, on_text))
    conn.send(("ready", len(sockets), []))
    _, duration = await commands.get()
    deadline = time.time() + duration
    applied = 0

    async def edit_loop(ws: fastws.FastWebSocket) -> None:
        nonlocal applied
        i = 0
        while time.time() < deadline:
            acks[ws] = asyncio.get_running_loop().create_future()
            ws.send_text(
                json.dumps(
                    {
                        "type": "trip.update",
                        "update_id": str(uuid.uuid4()),
                        "field": "notes",
                        "value": f"edit {i}",
                        "base_version": 1,
                    }
                )
            )
            if await asyncio.wait_for(acks[ws], 30):
                applied += 1
            i += 1

    await asyncio.gather(*(edit_loop(ws) for ws in sockets))
    conn.send(("result", applied))
    await commands.get()
    for ws in sockets:
        ws.close()
