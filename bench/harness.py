"""The benchmark harness: TripSage against two references, same server, same machine, same run.

    make bench            # short mode, under 3 minutes
    make bench-full       # the figures in docs/performance.md

References: `raw` (a raw ASGI broadcast app: the practical ceiling for Python) and `channels`
(a plain Channels app doing group_send through channels_redis: what users build by hand).
Scenarios S1-S6 are here, S7 (a reconnect storm on live traffic) in bench/reconnect.py, C10k in
bench/c10k.py; their parts in bench/infra.py (servers, nginx, load-generator workers, the shared
data) and bench/probes.py (the run's own Redis; what Redis and PostgreSQL spend). Results go to
bench/results/latest.json, the tables and plots into docs/performance.md between its bench
markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import c10k, loadgen, reconnect  # noqa: E402
from bench.infra import (  # noqa: E402
    APP_ROOT,
    APPS,
    NGINX,
    Fanout,
    Fixture,
    Proxy,
    Worker,
    build_fixture,
    close_all,
    cpu_seconds,
    log,
    raise_open_files,
    split,
    start_servers,
)
from bench.probes import PostgresCost, PrivateRedis, RedisCost, publish_cost  # noqa: E402

# Apps that speak the whole trip protocol (resume, heartbeats): S7 runs these only.
FULL_PROTOCOL = ("tripsage", "tripsage-before", "tripsage-asgi")


def s1(
    fx: Fixture,
    apps: list[str],
    sizes: list[int],
    rate: float,
    duration: float,
    stragglers: float,
    settle: float = 1.0,
) -> list[dict]:
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            for members in sizes:
                session = Fanout(
                    servers.targets,
                    fx.trip_path,
                    fx.member_tokens[:members],
                    fx.sender_tokens,
                    settle=settle,
                )
                try:
                    row = session.step(
                        rate, duration, {"server": servers.cpu}, stragglers=stragglers
                    )
                finally:
                    session.close()
                rows.append({"app": app, **row})
                log(f"S1 {app} N={members}: p99 {row['p99']:.0f} ms, {row['delivered']:.1%}")
        finally:
            servers.stop()
    return rows


def s2(
    fx: Fixture,
    apps: list[str],
    members: int,
    rates: list[float],
    duration: float,
    stragglers: float,
    settle: float = 1.0,
) -> list[dict]:
    """Step the edit rate up until p99 passes 100 ms or a delivery is lost (the same members
    connected through every step)."""
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        session = None
        try:
            session = Fanout(
                servers.targets,
                fx.trip_path,
                fx.member_tokens[:members],
                fx.sender_tokens,
                settle=settle,
            )
            best = None
            for rate in rates:
                row = session.step(rate, duration, {"server": servers.cpu}, stragglers=stragglers)
                ok = row["p99"] < 100 and row["delivered"] >= 0.999
                rows.append({"app": app, "ok": ok, **row})
                log(f"S2 {app} {rate:g}/s: p99 {row['p99']:.0f} ms, {row['delivered']:.1%}")
                if not ok:
                    break
                best = row
            rows.append({"app": app, "summary": True, "best": best})
        finally:
            if session is not None:
                session.close()
            servers.stop()
    return rows


def s3(fx: Fixture, apps: list[str], idle: int) -> list[dict]:
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            time.sleep(1.0)
            before = servers.rss()
            workers = [
                Worker(
                    loadgen.receivers,
                    {
                        "targets": servers.targets,
                        "path": fx.trip_path,
                        "tokens": g,
                        "concurrency": 25,
                    },
                )
                for g in split(fx.member_tokens[:idle], 2)
            ]
            connected = sum(w.recv(300)[1] for w in workers)
            time.sleep(3.0)
            after = servers.rss()
            close_all(workers)
        finally:
            servers.stop()
        per = (after - before) / max(1, connected)
        rows.append({"app": app, "connections": connected, "bytes_per_connection": per})
        log(f"S3 {app}: {per / 1024:.1f} KiB per idle connection ({connected} connected)")
    return rows


def s4(fx: Fixture, apps: list[str], count: int, redis: RedisCost) -> list[dict]:
    rows = []
    postgres = PostgresCost(fx.env["DATABASE_URL"])
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            time.sleep(0.5)
            workers = [
                Worker(
                    loadgen.storm,
                    {
                        "targets": servers.targets,
                        "path": fx.trip_path,
                        "tokens": g,
                        "concurrency": 25,
                    },
                )
                for g in split(fx.member_tokens[:count], 2)
            ]
            for w in workers:
                w.recv()
            redis_before, pg_before = redis.read(), postgres.read()
            cpu_before = sum(cpu_seconds(p.pid) for p in servers.processes)
            for w in workers:
                w.send("go")
            results = [w.recv(300) for w in workers]
            server_cpu = sum(cpu_seconds(p.pid) for p in servers.processes) - cpu_before
            redis_used = redis.delta(redis_before, redis.read())
            pg = PostgresCost.delta(pg_before, postgres.read(), pg_before)
            close_all(workers)
        finally:
            servers.stop()
        ok = sum(r[3] for r in results)
        elapsed = max(r[2] for r in results) - min(r[1] for r in results)
        errors = sum(len(r[4]) for r in results)
        rows.append(
            {
                "app": app,
                "connected": ok,
                "errors": errors,
                "refused_and_retried": sum(r[5] for r in results),
                "per_second": ok / elapsed,
                # The server's own CPU per connect (clock ticks: 10 ms), steadier than the rate
                # on a shared machine.
                "server_cpu_ms_per_connect": server_cpu / max(1, ok) * 1000,
                # What one connect costs Redis (the run's own Redis: nothing else uses it).
                "redis_cpu_us_per_connect": redis_used["cpu_s"] / max(1, ok) * 1e6,
                "redis_calls_per_connect": sum(redis_used["calls"].values()) / max(1, ok),
                "postgres_cpu_us_per_connect": pg["backend_cpu_s"] / max(1, ok) * 1e6
                if pg is not None
                else None,
            }
        )
        log(
            f"S4 {app}: {ok / elapsed:.0f} authenticated connects/s, "
            f"{rows[-1]['server_cpu_ms_per_connect']:.2f} ms server CPU each, {errors} errors"
        )
    postgres.close()
    return rows


def s5(
    fx: Fixture,
    apps: list[str],
    members: int,
    rate: float,
    duration: float,
    counts: tuple[int, ...],
    redis: RedisCost,
    stragglers: float,
    settle: float = 1.0,
    idle_seconds: float | None = None,
) -> list[dict]:
    """Fan-out over 1, 2 and 4 processes behind nginx: server CPU per delivery (should stay
    flat), the proxy's, and what each edit costs Redis (an idle stretch of the same length,
    the same sockets connected, is subtracted: presence, leases and tickers are not edits)."""
    rows = []
    for app in apps:
        for processes in counts:
            servers = start_servers(app, fx.env, processes)
            proxy = session = None
            try:
                proxy = Proxy(servers)
                session = Fanout(
                    proxy.targets,
                    fx.trip_path,
                    fx.member_tokens[:members],
                    fx.sender_tokens,
                    settle=settle,
                )
                idle_before = redis.read()
                time.sleep(idle_seconds or duration)
                idle = redis.delta(idle_before, redis.read())
                step_before = redis.read()
                row = session.step(
                    rate,
                    duration,
                    {"server": servers.cpu, "proxy": proxy.cpu},
                    stragglers=stragglers,
                )
                busy = redis.delta(step_before, redis.read())
            finally:
                if session is not None:
                    session.close()
                if proxy is not None:
                    proxy.stop()
                servers.stop()
            row.update(redis_per_edit(busy, idle, row["sent"]))
            rows.append({"app": app, "processes": processes, **row})
            log(
                f"S5 {app} x{processes} behind nginx: p99 {row['p99']:.0f} ms, "
                f"{row['delivered']:.1%}, {row['cpu_us_per_delivery']:.0f} us/delivery, Redis "
                f"{row['redis_cpu_us_per_edit']:.0f} us/edit"
            )
    return rows


def redis_per_edit(busy: dict[str, Any], idle: dict[str, Any], edits: int) -> dict[str, Any]:
    """Redis's cost per edit: the busy window minus the idle one, scaled to the same length."""
    scale = busy["seconds"] / idle["seconds"] if idle["seconds"] > 0 else 0.0
    edits = max(1, edits)
    calls = {
        name: (n - idle["calls"].get(name, 0) * scale) / edits for name, n in busy["calls"].items()
    }
    return {
        "redis_cpu_us_per_edit": max(0.0, busy["cpu_s"] - idle["cpu_s"] * scale) / edits * 1e6,
        "redis_calls_per_edit": {k: round(v, 3) for k, v in calls.items() if v > 0.005},
        "redis_bytes_out_per_edit": max(0.0, busy["net_out"] - idle["net_out"] * scale) / edits,
        "redis_bytes_in_per_edit": max(0.0, busy["net_in"] - idle["net_in"] * scale) / edits,
        "redis_idle_cpu_share": idle["cpu_s"] / idle["seconds"] if idle["seconds"] else 0.0,
    }


def s6(
    fx: Fixture, duration: float, redis: RedisCost, apps: tuple[str, ...] = ("tripsage",)
) -> list[dict]:
    """Persisted edits per second: over sockets, against the same service called directly;
    with what each edit costs PostgreSQL (backend CPU, rows, transactions, WAL) and Redis."""
    rows = []
    postgres = PostgresCost(fx.env["DATABASE_URL"])
    try:
        for app in apps:
            servers = start_servers(app, fx.env)
            try:
                worker = Worker(
                    loadgen.editors,
                    {
                        "targets": servers.targets,
                        "paths": fx.editor_paths,
                        "tokens": fx.editor_tokens,
                    },
                )
                worker.recv()
                pg_before, redis_before = postgres.read(), redis.read()
                worker.send("go", duration)
                applied = worker.recv(duration + 120)[1]
                pg_cpu, redis_used = postgres.read(), redis.delta(redis_before, redis.read())
                worker.close()
            finally:
                servers.stop()
            time.sleep(0.5)  # the backends' table counters arrive as they exit
            pg = PostgresCost.delta(pg_before, pg_cpu, postgres.read())
            row: dict[str, Any] = {
                "path": f"socket ({app})",
                "edits_per_second": applied / duration,
                "edits": applied,
                "redis_cpu_us_per_edit": redis_used["cpu_s"] / max(1, applied) * 1e6,
                "redis_calls_per_edit": {
                    k: round(v / max(1, applied), 3) for k, v in redis_used["calls"].items()
                },
            }
            if pg is not None:
                row["postgres"] = {
                    "backend_cpu_us_per_edit": pg["backend_cpu_s"] / max(1, applied) * 1e6,
                    "rows_per_edit": (pg["rows_inserted"] + pg["rows_updated"] + pg["rows_deleted"])
                    / max(1, applied),
                    "inserts_per_edit": pg["rows_inserted"] / max(1, applied),
                    "updates_per_edit": pg["rows_updated"] / max(1, applied),
                    "commits_per_edit": pg["commits"] / max(1, applied),
                    "wal_bytes_per_edit": pg["wal_bytes"] / max(1, applied),
                }
            rows.append(row)
            log(f"S6: {applied / duration:.0f} edits/s over sockets ({app})")
    finally:
        postgres.close()
    direct = direct_service_rate(fx, duration)
    rows.append({"path": "service called directly", "edits_per_second": direct})
    log(f"S6: {direct:.0f} edits/s direct")
    return rows


def direct_service_rate(fx: Fixture, duration: float) -> float:
    from django.db import connections

    from collaboration.models import TripMember
    from collaboration.services import trips

    pairs = list(
        TripMember.objects.filter(
            role="owner", trip__name__startswith="Editor trip"
        ).select_related("user")
    )
    counts = [0] * len(pairs)
    deadline = time.time() + duration

    def loop(i: int, member: Any) -> None:
        while time.time() < deadline:
            trips.trip_update(
                trip_id=member.trip_id, actor=member.user, update_id=uuid.uuid4(),
                field="destination", value=f"d{counts[i]}", base_version=1,
            )  # fmt: skip
            counts[i] += 1
        connections.close_all()

    threads = [threading.Thread(target=loop, args=(i, m)) for i, m in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / duration


# -- report ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["Django", "channels", "channels-redis", "daphne", "redis", "Twisted"]
    found = {name: version(name) for name in names}
    found["Python"] = platform.python_version()
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    found["Redis"] = next((w.split("=")[1] for w in redis_version if w.startswith("v=")), "?")
    if os.access(NGINX, os.X_OK):
        nginx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr
        found["nginx"] = nginx.strip().rsplit("/", 1)[-1] or "?"
    return found


def baseline_tree(rev: str) -> Path:
    """A checkout of `rev` beside this tree (made once per commit, reused after)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = ROOT / "bench" / "results" / f"baseline-{sha[:12]}"
    if not (tree / "manage.py").exists():
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    log(f"tripsage-before: {rev} ({sha[:12]}) from {tree}")
    return tree


# Sizes per mode. Short mode (make bench) must stay under 3 minutes on this machine with every
# scenario present; full mode is the run whose figures docs/performance.md shows.
SHORT = {
    "members": 1000,
    "s1_sizes": "100,1000",
    "seconds": 1.5,  # sending time per step (S1 too)
    "stragglers": 2,  # longest wait for late deliveries after a step
    "settle": 0.5,  # after connecting, before measuring (presence settles)
    "s2_rates": [10, 20, 40, 80],
    "s3_idle": 500,
    "s4_count": 400,
    "s5_members": 200,
    "s5_idle": 1.5,  # the idle stretch subtracted from Redis's cost per edit
    "s5_apps": ("tripsage",),
    "calibration": (0, 2, 8),
    "calibration_count": 1500,
    "s7_members": 300,
    "s7_before": 2.5,
    "s7_after": 0.5,
    "s7_variants": ("survivor",),
    "c10k_sockets": 600,
    "c10k_heartbeat": 2,  # REALTIME_HEARTBEAT_SECONDS while C10k runs: one round in the window
    "c10k_seconds": 2,
    "c10k_settle": 1.0,
}
FULL = {
    "members": 2000,
    "s1_sizes": "10,100,1000",
    "seconds": 10,
    "s1_seconds": 20,
    "stragglers": 15,
    "settle": 1.0,
    "s2_rates": [10, 20, 30, 40, 60, 80, 100, 120, 140, 160, 200],
    "s3_idle": 2000,
    "s4_count": 2000,
    "s5_members": 1000,
    "s5_idle": 10,
    "s5_apps": ("tripsage", "raw"),
    "calibration": (0, 1, 2, 4, 8, 16),
    "calibration_count": 5000,
    "s7_members": 2000,
    "s7_before": 10,
    "s7_after": 5,
    "s7_variants": ("survivor", "restart"),
    "c10k_sockets": 10000,
    "c10k_heartbeat": 30,  # the default
    "c10k_seconds": 20,
    "c10k_settle": 3.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="TripSage benchmarks against two references")
    parser.add_argument("--full", action="store_true", help="the long run for docs/performance.md")
    parser.add_argument("--scenarios", default="s1,s2,s3,s4,s5,s6,s7,c10k")
    parser.add_argument(
        "--apps",
        help="default: tripsage,channels,raw, and in full mode tripsage-asgi for S1 and S2",
    )
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/")
    parser.add_argument("--sizes", help="S1 trip sizes (full: 10,100,1000; short: 100,1000)")
    parser.add_argument("--duration", type=float, help="seconds of sending per S1 step")
    parser.add_argument(
        "--s7-variants",
        help="S7: survivor (reconnect to the surviving process) and/or restart (to it and the "
        "killed one started again); short: survivor, full: both",
    )
    parser.add_argument("--s7-members", type=int, help="S7 trip size (at most the fixture's)")
    parser.add_argument(
        "--redis-url",
        help="use this Redis instead of a redis-server of the run's own (its INFO then counts "
        "whatever else uses it)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run this service at git revision REV as tripsage-before (a worktree under "
        "bench/results/), for before/after figures of one change in the same run",
    )
    args = parser.parse_args()
    full = args.full
    size = FULL if full else SHORT
    apps = (args.apps or "tripsage,channels,raw" + (",tripsage-asgi" if full else "")).split(",")
    if args.baseline:
        APP_ROOT["tripsage-before"] = baseline_tree(args.baseline)
        APPS["tripsage-before"] = APPS["tripsage"]
        apps.insert(1, "tripsage-before")
    # The ASGI-send variant differs from tripsage only in how frames are written: S3-S6 do not
    # measure that, so it runs in S1 and S2 only.
    single = [a for a in apps if a != "tripsage-asgi"] or apps
    wanted = set(args.scenarios.split(","))
    if "s5" in wanted and not os.access(NGINX, os.X_OK):
        parser.error(
            f"S5 runs behind nginx and there is none at {NGINX}: install it (Debian: apt-get "
            "install nginx-light), point BENCH_NGINX at an nginx binary, or leave s5 out of "
            "--scenarios"
        )

    soft, hard = raise_open_files()
    private = None if args.redis_url else PrivateRedis()
    redis_url = args.redis_url or private.url
    try:
        big = size["c10k_sockets"] if "c10k" in wanted else 0
        fx = build_fixture(size["members"], editors=8, big=big, redis_url=redis_url)
        redis = RedisCost(redis_url)
        results: dict[str, Any] = {
            "mode": "full" if full else "short",
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "open_files": [soft, hard],
            },
            "versions": versions(),
            "database": fx.env["DATABASE_URL"].split(":", 1)[0],
            "redis": "private" if private else "given",
        }
        started = time.time()
        run_scenarios(results, fx, redis, apps, single, wanted, size, args)
        results["seconds"] = time.time() - started
    finally:
        if private is not None:
            private.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    log(f"done in {results['seconds']:.0f} s; bench/results/latest.json")
    if not args.no_report:
        from bench import report

        report.write(results)
        log("docs/performance.md updated")


def run_scenarios(
    results: dict[str, Any],
    fx: Fixture,
    redis: RedisCost,
    apps: list[str],
    single: list[str],
    wanted: set[str],
    size: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    seconds, stragglers = size["seconds"], size["stragglers"]
    if "s1" in wanted:
        sizes = [int(n) for n in (args.sizes or size["s1_sizes"]).split(",")]
        duration = args.duration or size.get("s1_seconds", seconds)
        results["s1"] = s1(fx, apps, sizes, 10, duration, stragglers, size["settle"])
    if "s2" in wanted:
        # 500 members: big enough that fan-out, not the one trip's write rate, sets the limit
        # (S6 measures that), small enough that daphne's per-event cost leaves room under 100 ms.
        results["s2"] = s2(fx, apps, 500, size["s2_rates"], seconds, stragglers, size["settle"])
    if "s3" in wanted:
        results["s3"] = s3(fx, single, size["s3_idle"])
    if "s4" in wanted:
        results["s4"] = s4(fx, single, size["s4_count"], redis)
    if "s5" in wanted:
        s5_apps = [a for a in single if a in size["s5_apps"] or a == "tripsage-before"]
        results["s5"] = s5(
            fx, s5_apps or single[:1], size["s5_members"], 10, seconds, (1, 2, 4), redis,
            stragglers, size["settle"], size["s5_idle"],
        )  # fmt: skip
        # What Redis spends per PUBLISH against the processes subscribed (the projection's
        # per-process term), on the run's own Redis with nothing else running.
        results["redis_publish"] = publish_cost(
            redis.url, subscribers=size["calibration"], count=size["calibration_count"]
        )
        log(
            f"Redis PUBLISH: {results['redis_publish']['base_us']:.1f} us + "
            f"{results['redis_publish']['per_subscriber_us']:.1f} us per subscribed process"
        )
    if "s6" in wanted:
        s6_apps = tuple(a for a in ("tripsage", "tripsage-before") if a in apps)
        results["s6"] = s6(fx, seconds, redis, s6_apps or ("tripsage",))
    if "s7" in wanted:
        s7_apps = [a for a in single if a in FULL_PROTOCOL]
        if s7_apps:
            variants = tuple((args.s7_variants or ",".join(size["s7_variants"])).split(","))
            results["s7"] = reconnect.s7(
                fx, s7_apps, args.s7_members or size["s7_members"], 10, size["s7_before"],
                size["s7_after"], variants=variants, settle=size["settle"],
            )  # fmt: skip
    if "c10k" in wanted:
        c10k_apps = [a for a in single if a in ("tripsage", "tripsage-before", "raw")]
        if c10k_apps:
            results["c10k"] = c10k.c10k(
                fx, c10k_apps, size["c10k_sockets"], heartbeat=size["c10k_heartbeat"],
                idle=size["c10k_heartbeat"], rate=1, duration=size["c10k_seconds"],
                redis=redis, stragglers=stragglers, settle=size["c10k_settle"],
            )  # fmt: skip


if __name__ == "__main__":
    main()
