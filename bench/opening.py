"""Admission control's numbers: how one process's connect rate and connect latency grow with the
sockets opening at once (no limit), and what a refusal costs against a connect. The measurement
behind REALTIME_MAX_OPENING_SOCKETS's default (docs/decisions.md, "Issue 16: admission control").

    .venv/bin/python -m bench.opening                # BENCH_DATABASE_URL, REDIS_URL as bench/
    .venv/bin/python -m bench.opening --in-flight 10,50,100 --count 600
    .venv/bin/python -m bench.opening --limit 100 --in-flight 50,100,200,400   # the gate on

Each step starts a fresh TripSage process and opens `--count` authenticated trip sockets (one
trip, as S4) with a given number in flight, timing each from its TCP connect to its
`trip.snapshot`. The refusal step fills the gate with silent sockets, then storms it: every
connect is refused (SERVER_ERROR "overloaded", close 4013).
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
import time
from multiprocessing.connection import Connection
from typing import Any

from bench import fastws
from bench.harness import ROOT, Servers, Worker, build_fixture, free_port, log, percentile


def start_server(env: dict[str, str]) -> Servers:
    """One TripSage process listening with production's backlog (2048, the image's and `make
    cluster`'s), so that the kernel's queue of unaccepted connections is not what is measured."""
    port = free_port()
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=2048"
    with (logs / f"opening-{port}.log").open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-e", endpoint, "tripsage.asgi:application"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited at start-up (code {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("the server did not listen") from None
            time.sleep(0.1)
    return Servers("tripsage", [process], [port])


def opener(conn: Connection, spec: dict[str, Any]) -> None:
    asyncio.run(_opener(conn, spec))


async def _opener(conn: Connection, spec: dict[str, Any]) -> None:
    host, port = spec["target"]
    path = spec["path"]
    limit = asyncio.Semaphore(spec["in_flight"])
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    sockets: list[fastws.FastWebSocket] = []
    silent = [
        await fastws.connect(host, port, path, lambda ws, p: None) for _ in range(spec["hold"])
    ]

    async def one(token: str) -> None:
        async with limit:
            started = time.perf_counter()
            done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            def on_text(ws: fastws.FastWebSocket, payload: bytes) -> None:
                if done.done():
                    if b'"type":"ping"' in payload:
                        ws.send_text(
                            json.dumps({"type": "pong", "request_id": json.loads(payload)["id"]})
                        )
                elif b"trip.snapshot" in payload:
                    done.set_result("connected")
                elif b'"overloaded"' in payload:
                    done.set_result("refused")
                elif b'"type":"error"' in payload:
                    done.set_result("error")

            try:
                ws = await fastws.connect(host, port, path, on_text)
                ws.send_text(json.dumps({"token": token}))
                outcome = await asyncio.wait_for(done, 60)
                if outcome == "refused":
                    await asyncio.wait_for(ws.closed, 10)
                sockets.append(ws)
            except Exception:
                outcome = "failed"
            latencies.append(time.perf_counter() - started)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(one(token) for token in spec["tokens"]))
    elapsed = time.perf_counter() - started
    conn.send((elapsed, latencies, outcomes))
    conn.recv()  # close
    for ws in sockets + silent:
        ws.close()
    await asyncio.sleep(0.2)


def step(fx: Any, tokens: list[str], in_flight: int, hold: int = 0, **env: str) -> dict:
    servers = start_server({**fx.env, **env})
    try:
        time.sleep(0.5)
        worker = Worker(
            opener,
            {
                "target": servers.targets[0],
                "path": fx.trip_path,
                "tokens": tokens,
                "in_flight": in_flight,
                "hold": hold,
            },
        )
        cpu0 = servers.cpu()
        elapsed, latencies, outcomes = worker.recv(600)
        cpu = servers.cpu() - cpu0
        worker.close()
    finally:
        servers.stop()
    latencies.sort()
    done = sum(outcomes.values())
    return {
        "in_flight": in_flight,
        "per_second": done / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "server_cpu_ms_each": cpu / done * 1000,
        "outcomes": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", default="1,5,10,25,50,100,200,400")
    parser.add_argument("--count", type=int, default=800, help="connects per step")
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="REALTIME_MAX_OPENING_SOCKETS for the steps (default 0: no limit, the curve); with "
        "a limit, refused connects are counted and not retried",
    )
    args = parser.parse_args()
    fx = build_fixture(args.count, editors=0)
    rows = []
    for in_flight in (int(n) for n in args.in_flight.split(",")):
        row = step(fx, fx.member_tokens, in_flight, REALTIME_MAX_OPENING_SOCKETS=str(args.limit))
        rows.append(row)
        log(
            f"{in_flight:4d} in flight: {row['per_second']:5.0f} connects/s, p50 "
            f"{row['p50_ms']:6.0f} ms, p99 {row['p99_ms']:6.0f} ms, server CPU "
            f"{row['server_cpu_ms_each']:.2f} ms each, {row['outcomes']}"
        )
    # Refusals: the gate held full by silent sockets (no token within a minute), then a storm.
    refused = step(
        fx,
        fx.member_tokens,
        50,
        hold=1,
        REALTIME_MAX_OPENING_SOCKETS="1",
        REALTIME_AUTH_TIMEOUT_SECONDS="120",
    )
    log(
        f"refusals, 50 in flight: {refused['per_second']:5.0f}/s, p50 {refused['p50_ms']:.0f} "
        f"ms, server CPU {refused['server_cpu_ms_each']:.2f} ms each, {refused['outcomes']}"
    )
    print(json.dumps({"steps": rows, "refusals": refused}, indent=2))


if __name__ == "__main__":
    main()
