"""C10k: 10,000 idle authenticated trip sockets on one daphne process (fewer in short mode).

For each app, on one process: the memory each socket holds (RSS delta), the CPU the process
spends per second while every socket is idle (our heartbeat: a `ping` per socket every
REALTIME_HEARTBEAT_SECONDS, answered with `pong`; daphne's own WebSocket pings for both apps),
what the idle sockets cost Redis per second, and then the same sockets as the members of one trip
receiving 1 edit/s (delivered, p99). The raw ASGI app runs in the same run as the reference.

The harness raises RLIMIT_NOFILE to its hard limit first (bench/infra.py); the server and the
load generators inherit it. docs/performance.md says what a deployment needs.
"""

from __future__ import annotations

import time
from typing import Any

from bench.infra import Fanout, Fixture, log, start_servers
from bench.probes import RedisCost


def c10k(
    fx: Fixture,
    apps: list[str],
    sockets: int,
    *,
    heartbeat: float,
    idle: float,
    rate: float,
    duration: float,
    redis: RedisCost,
    stragglers: float,
    settle: float = 3.0,
) -> list[dict[str, Any]]:
    rows = []
    tokens = fx.big_tokens[:sockets]
    for app in apps:
        env = {**fx.env, "REALTIME_HEARTBEAT_SECONDS": f"{heartbeat:g}"}
        servers = start_servers(app, env)
        session = None
        try:
            time.sleep(1.0)
            rss_before = servers.rss()
            connect_started = time.time()
            # 4 load-generator processes: a few thousand sockets each.
            session = Fanout(
                servers.targets,
                fx.big_trip_path,
                tokens,
                fx.sender_tokens,
                workers=4 if sockets > 2000 else 2,
                concurrency=25,
                settle=0,
            )
            connect_seconds = time.time() - connect_started
            time.sleep(settle)  # presence and the metrics settle
            rss_after = servers.rss()
            pings_before = _pings(session)
            cpu_before, redis_before = servers.cpu(), redis.read()
            time.sleep(idle)
            idle_cpu = servers.cpu() - cpu_before
            redis_idle = redis.delta(redis_before, redis.read())
            pings_after = _pings(session)
            open_sockets = pings_after[2]
            step = session.step(rate, duration, {"server": servers.cpu}, stragglers=stragglers)
        finally:
            if session is not None:
                session.close()
            servers.stop()
        connected = session.connected if session is not None else 0
        row = {
            "app": app,
            "sockets": sockets,
            "connected": connected,
            "connect_errors": len(session.connect_errors) if session is not None else 0,
            "connect_seconds": connect_seconds,
            "open_after_idle": open_sockets,
            "bytes_per_connection": (rss_after - rss_before) / max(1, connected),
            "rss_mib": rss_after / 2**20,
            "heartbeat_seconds": heartbeat,
            "idle_seconds": idle,
            "idle_cpu_per_s": idle_cpu / idle,
            "heartbeats": pings_after[0] - pings_before[0],
            "protocol_pings": pings_after[1] - pings_before[1],
            "redis_idle_calls_per_s": sum(redis_idle["calls"].values()) / redis_idle["seconds"],
            "redis_idle_cpu_per_s": redis_idle["cpu_s"] / redis_idle["seconds"],
            "fanout": step,
        }
        rows.append(row)
        log(
            f"C10k {app}: {connected} sockets in {connect_seconds:.0f} s, "
            f"{row['bytes_per_connection'] / 1024:.1f} KiB each, idle CPU "
            f"{row['idle_cpu_per_s'] * 100:.1f} % ({row['heartbeats']} heartbeats, "
            f"{row['protocol_pings']} WebSocket pings in {idle:g} s); {rate:g} edit/s: "
            f"{step['delivered']:.1%} delivered, p99 {step['p99']:.0f} ms"
        )
    return rows


def _pings(session: Fanout) -> tuple[int, int, int]:
    """Heartbeat pings answered, WebSocket pings answered, sockets open: over every receiver."""
    answers = [w.ask("pings") for w in session.receivers]
    return (
        sum(a[1] for a in answers),
        sum(a[2] for a in answers),
        sum(a[3] for a in answers),
    )
