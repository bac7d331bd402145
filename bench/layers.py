"""Fan-out through each channels_redis layer: one trip with N connected members, edits at a fixed
rate, delivery latency from the intended send time to receipt on every client.

    .venv/bin/python bench/layers.py --members 200 --rate 10 --seconds 10

Starts its own daphne per layer against a throw-away SQLite database and the Redis at REDIS_URL
(default redis://127.0.0.1:6379/0). Prints a Markdown table; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.infra import cpu_seconds, free_port  # noqa: E402


def setup_database(env: dict[str, str], members: int) -> tuple[int, list[str]]:
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from collaboration.services.members import trip_member_set
    from collaboration.services.trips import trip_create

    user_model = get_user_model()
    users = [user_model.objects.create(username=f"member{i}") for i in range(members)]
    trip = trip_create(owner=users[0], name="Bench trip")
    for user in users[1:]:
        trip_member_set(trip_id=trip.pk, actor=None, user=user, role="editor")
    tokens = []
    for user in users:
        token = AccessToken.for_user(user)
        token.set_exp(lifetime=__import__("datetime").timedelta(hours=1))
        tokens.append(str(token))
    return trip.pk, tokens


async def run_layer(
    layer: str, env: dict[str, str], trip_id: int, tokens: list[str], rate: float, seconds: float
) -> dict[str, float]:
    import websockets

    port = free_port()
    server_env = dict(os.environ, **env, REDIS_CHANNEL_LAYER=layer, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "tripsage.asgi:application"],
        cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/ws/trips/{trip_id}/"
        intended: dict[str, float] = {}
        received: dict[str, list[float]] = {}
        sockets = []

        async def open_client(token: str):
            ws = await websockets.connect(url, max_queue=None, open_timeout=30)
            await ws.send(json.dumps({"token": token}))
            while json.loads(await ws.recv())["type"] != "trip.snapshot":
                pass
            return ws

        for start in range(0, len(tokens), 50):  # daphne's listen backlog is 50
            sockets += await asyncio.gather(*(open_client(t) for t in tokens[start : start + 50]))

        async def reader(ws) -> None:
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "trip.updated":
                    received.setdefault(message["update_id"], []).append(now)
                elif message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong", "request_id": message["id"]}))

        readers = [asyncio.create_task(reader(ws)) for ws in sockets]
        await asyncio.sleep(1)
        cpu_before = cpu_seconds(server.pid)
        sender = sockets[0]
        count = int(rate * seconds)
        t0 = time.perf_counter() + 0.1
        for i in range(count):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            update_id = str(uuid.uuid4())
            intended[update_id] = due  # open loop: a slow server shows as latency
            await sender.send(
                json.dumps(
                    {
                        "type": "trip.update",
                        "update_id": update_id,
                        "field": "notes",
                        "value": f"edit {i}",
                        "base_version": 1,
                    }
                )
            )
        await asyncio.sleep(5)  # stragglers
        cpu = cpu_seconds(server.pid) - cpu_before
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
        latencies = sorted(
            (t - intended[uid]) * 1000 for uid, times in received.items() for t in times
            if uid in intended
        )  # fmt: skip
        expected = count * len(sockets)
        return {
            "delivered": len(latencies) / expected,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
            "max": latencies[-1] if latencies else float("nan"),
            "cpu_us_per_delivery": cpu / max(1, len(latencies)) * 1e6,
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="edits per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--layers", default="core,pubsub")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="tripsage-bench-")
    env = {
        "DJANGO_SETTINGS_MODULE": "tripsage.settings.base",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "CHANNEL_LAYER_PREFIX": "bench-" + uuid.uuid4().hex[:8],
        "REALTIME_ALLOWED_ORIGINS": "*",
    }
    trip_id, tokens = setup_database(env, args.members)
    rows = []
    for layer in args.layers.split(","):
        result = asyncio.run(run_layer(layer, env, trip_id, tokens, args.rate, args.seconds))
        rows.append((layer, result))
    print(f"\n{args.members} members, {args.rate:g} edits/s for {args.seconds:g} s, one daphne\n")
    print("| layer | delivered | p50 ms | p99 ms | max ms | server CPU us / delivery |")
    print("| --- | --- | --- | --- | --- | --- |")
    for layer, r in rows:
        print(
            f"| {layer} | {r['delivered']:.1%} | {r['p50']:.0f} | {r['p99']:.0f} | "
            f"{r['max']:.0f} | {r['cpu_us_per_delivery']:.0f} |"
        )


if __name__ == "__main__":
    main()
