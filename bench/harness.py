"""The benchmark harness: TripSage against two references, same server, same machine, same run.

    make bench            # short mode, under 3 minutes
    make bench-full       # the figures in docs/performance.md

References: `raw` (a raw ASGI broadcast app: the practical ceiling for Python) and `channels`
(a plain Channels app doing group_send through channels_redis: what users build by hand).
Results go to bench/results/latest.json, the tables and plots into docs/performance.md between
its bench markers.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402

APPS = {
    "tripsage": "tripsage.asgi:application",
    "channels": "bench.apps.plain_channels:application",
    "raw": "bench.apps.raw_asgi:app",
    "traced": "bench.apps.traced:application",  # tripsage under tracemalloc, for profiling S3
    # TripSage with every frame through daphne's ASGI send (no direct writes, realtime.direct):
    # what the direct writes are worth, measured in the same run.
    "tripsage-asgi": "tripsage.asgi:application",
}
APP_ENV = {"tripsage-asgi": {"REALTIME_DIRECT_WRITES": "false"}}
# Apps served from another source tree than this one: "tripsage-before" (--baseline REV) is this
# service at an earlier commit, so a change's before and after are measured in the same run.
APP_ROOT: dict[str, Path] = {}
TEXT_FIELDS = ["name", "destination", "notes"]  # one per sender: a sender never conflicts
SPAWN = multiprocessing.get_context("spawn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(len(values) * p / 100) - 1))]


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Servers:
    app: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def targets(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def rss(self) -> int:
        return sum(rss_bytes(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_servers(app: str, env: dict[str, str], count: int = 1) -> Servers:
    servers = Servers(app)
    root = APP_ROOT.get(app, ROOT)
    for _ in range(count):
        port = free_port()
        logs = ROOT / "bench" / "results" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{app}-{port}.log").open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APPS[app]],
                cwd=root,
                env={
                    **os.environ,
                    **env,
                    **APP_ENV.get(app, {}),
                    "PYTHONPATH": str(root),
                    "LOG_LEVEL": "WARNING",
                },
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        servers.processes.append(process)
        servers.ports.append(port)
    for port, process in zip(servers.ports, servers.processes, strict=True):
        deadline = time.time() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} server exited at start-up (code {process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"{app} server did not listen") from None
                time.sleep(0.1)
    return servers


# -- worker processes --------------------------------------------------------------------------


class Worker:
    def __init__(self, target: Any, spec: dict[str, Any]) -> None:
        self.conn, child = SPAWN.Pipe()
        self.process = SPAWN.Process(target=target, args=(child, spec), daemon=True)
        self.process.start()

    def send(self, *command: Any) -> None:
        self.conn.send(command)

    def recv(self, timeout: float = 180) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError("load generator did not answer")
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.send("close")
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


# -- the data every app shares -----------------------------------------------------------------


@dataclass
class Fixture:
    env: dict[str, str]
    trip_path: str
    member_tokens: list[str]
    sender_tokens: list[str]
    editor_paths: list[str]
    editor_tokens: list[str]


def database_url() -> str:
    configured = os.environ.get("BENCH_DATABASE_URL")
    if configured:
        return configured
    import psycopg

    try:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as db:
            db.execute("DROP DATABASE IF EXISTS tripsage_bench WITH (FORCE)")
            db.execute("CREATE DATABASE tripsage_bench")
        return "postgres://postgres@127.0.0.1:5432/tripsage_bench"
    except psycopg.Error:
        path = Path("/tmp") / f"tripsage-bench-{uuid.uuid4().hex[:8]}.sqlite3"
        return f"sqlite:///{path}"


def build_fixture(members: int, editors: int) -> Fixture:
    env = {
        "DJANGO_SETTINGS_MODULE": "tripsage.settings.base",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        # The key the service signs its JWTs with (never the Django key); the reference apps
        # verify the same tokens with it.
        "JWT_SIGNING_KEY": "bench-jwt-" + uuid.uuid4().hex,
        "CHANNEL_LAYER_PREFIX": "bench" + uuid.uuid4().hex[:8],
        "REALTIME_ALLOWED_ORIGINS": "*",
        "JWT_ACCESS_LIFETIME_SECONDS": "7200",
        # Load tests come from one address and one user per sender: lift the per-user and
        # per-IP limits (docs/performance.md says so).
        "REALTIME_MAX_CONNECTIONS_PER_USER": "100000",
        "REALTIME_CONNECTS_PER_MINUTE_PER_IP": "1000000",
        # S1's senders stay within the seed's 300/min each (10 edits/s over three senders), but
        # S2 steps up to 40/s per sender and S6's editors send as fast as acks come back: the
        # message limits are lifted too, while every check still runs (one Redis round trip).
        "REALTIME_RATE_LIMITS": "trip_collaboration=1000000/1000000",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from collaboration.models import Trip, TripMember

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"u{i}") for i in range(members + len(TEXT_FIELDS) + editors)]
    )
    trip = Trip.objects.create(name="Bench trip", created_by=users[0])
    TripMember.objects.bulk_create(
        TripMember(trip=trip, user=u, role="editor") for u in users[: members + len(TEXT_FIELDS)]
    )
    editor_users = users[members + len(TEXT_FIELDS) :]
    editor_trips = [
        Trip.objects.create(name=f"Editor trip {u.pk}", created_by=u) for u in editor_users
    ]
    TripMember.objects.bulk_create(
        TripMember(trip=t, user=u, role="owner")
        for t, u in zip(editor_trips, editor_users, strict=True)
    )

    def token(user: Any) -> str:
        access = AccessToken.for_user(user)
        access.set_exp(lifetime=timedelta(hours=2))
        return str(access)

    return Fixture(
        env=env,
        trip_path=f"/ws/trips/{trip.pk}/",
        member_tokens=[token(u) for u in users[:members]],
        sender_tokens=[token(u) for u in users[members : members + len(TEXT_FIELDS)]],
        editor_paths=[f"/ws/trips/{t.pk}/" for t in editor_trips],
        editor_tokens=[token(u) for u in editor_users],
    )


# -- scenarios ---------------------------------------------------------------------------------


def fanout_run(
    servers: Servers, fx: Fixture, members: int, rate: float, duration: float
) -> dict[str, Any]:
    """Open-loop edits at `rate` for `duration` to `members` receivers; latency on every one."""
    groups = split(fx.member_tokens[:members], 2 if members >= 400 else 1)
    receivers = [
        Worker(loadgen.receivers, {"targets": servers.targets, "path": fx.trip_path, "tokens": g})
        for g in groups
    ]
    sender = Worker(
        loadgen.senders,
        {
            "targets": servers.targets[:1],
            "path": fx.trip_path,
            "tokens": fx.sender_tokens,
            "fields": TEXT_FIELDS,
        },
    )
    try:
        ready = [w.recv() for w in receivers]
        connected = sum(r[1] for r in ready)
        connect_errors = [e for r in ready for e in r[2]]
        if connect_errors:
            log(f"{len(connect_errors)} connects failed, e.g. {connect_errors[0]}")
        sender.recv()
        time.sleep(1.0)  # presence settles
        for w in receivers:
            w.send("reset")
        cpu0 = servers.cpu()
        sender.send("send", rate, duration)
        sent = sender.recv(duration + 120)[1]
        # Wait for stragglers: until every delivery arrived, or 15 s (what is still missing
        # then counts as not delivered).
        deadline = time.time() + 15
        while time.time() < deadline:
            time.sleep(0.25)
            arrived = 0
            for w in receivers:
                w.send("count")
                arrived += w.recv()[1]
            if arrived >= sent * connected:
                break
        window = duration + (time.time() - deadline + 15)
        cpu = servers.cpu() - cpu0
        latencies: list[float] = []
        closes: dict[int, int] = {}
        for w in receivers:
            w.send("collect")
            _, raw, codes = w.recv()
            values = array("d")
            values.frombytes(raw)
            latencies.extend(values)
            for code, count in codes.items():
                closes[code] = closes.get(code, 0) + count
        sender.send("collect")
        outcome = sender.recv()[1]
    finally:
        for w in [*receivers, sender]:
            w.close()
    latencies.sort()
    expected = sent * connected  # a failed connect is reported, not counted as undelivered
    return {
        "members": members,
        "connected": connected,
        "connect_errors": len(connect_errors),
        "rate": rate,
        "sent": sent,
        "acks": outcome,
        "delivered": len(latencies) / expected if expected else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "deliveries_per_s": len(latencies) / duration,
        "cpu_us_per_delivery": cpu / max(1, len(latencies)) * 1e6,
        "server_cpu_share": cpu / window,
        "closes": closes,
    }


def s1(fx: Fixture, apps: list[str], sizes: list[int], rate: float, duration: float) -> list[dict]:
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            for members in sizes:
                row = fanout_run(servers, fx, members, rate, duration)
                rows.append({"app": app, **row})
                log(f"S1 {app} N={members}: p99 {row['p99']:.0f} ms, {row['delivered']:.1%}")
        finally:
            servers.stop()
    return rows


def s2(
    fx: Fixture, apps: list[str], members: int, rates: list[float], duration: float
) -> list[dict]:
    """Step the edit rate up until p99 passes 100 ms or a delivery is lost."""
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            best = None
            for rate in rates:
                row = fanout_run(servers, fx, members, rate, duration)
                ok = row["p99"] < 100 and row["delivered"] >= 0.999
                rows.append({"app": app, "ok": ok, **row})
                log(f"S2 {app} {rate:g}/s: p99 {row['p99']:.0f} ms, {row['delivered']:.1%}")
                if not ok:
                    break
                best = row
            rows.append({"app": app, "summary": True, "best": best})
        finally:
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
            for w in workers:
                w.close()
        finally:
            servers.stop()
        per = (after - before) / max(1, connected)
        rows.append({"app": app, "connections": connected, "bytes_per_connection": per})
        log(f"S3 {app}: {per / 1024:.1f} KiB per idle connection ({connected} connected)")
    return rows


def s4(fx: Fixture, apps: list[str], count: int) -> list[dict]:
    rows = []
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
            for w in workers:
                w.send("go")
            results = [w.recv(300) for w in workers]
            for w in workers:
                w.close()
        finally:
            servers.stop()
        ok = sum(r[3] for r in results)
        elapsed = max(r[2] for r in results) - min(r[1] for r in results)
        errors = sum(len(r[4]) for r in results)
        rows.append({"app": app, "connected": ok, "errors": errors, "per_second": ok / elapsed})
        log(f"S4 {app}: {ok / elapsed:.0f} authenticated connects/s, {errors} errors")
    return rows


def s5(fx: Fixture, apps: list[str], members: int, rate: float, duration: float) -> list[dict]:
    rows = []
    for app in apps:
        for processes in (1, 2):
            servers = start_servers(app, fx.env, processes)
            try:
                row = fanout_run(servers, fx, members, rate, duration)
            finally:
                servers.stop()
            rows.append({"app": app, "processes": processes, **row})
            log(f"S5 {app} x{processes}: p99 {row['p99']:.0f} ms, {row['delivered']:.1%}")
    return rows


def s6(fx: Fixture, duration: float, apps: tuple[str, ...] = ("tripsage",)) -> list[dict]:
    """Persisted edits per second: over sockets, against the same service called directly."""
    rows = []
    for app in apps:
        servers = start_servers(app, fx.env)
        try:
            worker = Worker(
                loadgen.editors,
                {"targets": servers.targets, "paths": fx.editor_paths, "tokens": fx.editor_tokens},
            )
            worker.recv()
            worker.send("go", duration)
            applied = worker.recv(duration + 120)[1]
            worker.close()
        finally:
            servers.stop()
        rows.append({"path": f"socket ({app})", "edits_per_second": applied / duration})
        log(f"S6: {applied / duration:.0f} edits/s over sockets ({app})")
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


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["Django", "channels", "channels-redis", "daphne", "redis", "Twisted"]
    found = {name: version(name) for name in names}
    found["Python"] = platform.python_version()
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    found["Redis"] = next((w.split("=")[1] for w in redis_version if w.startswith("v=")), "?")
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


def main() -> None:
    parser = argparse.ArgumentParser(description="TripSage benchmarks against two references")
    parser.add_argument("--full", action="store_true", help="the long run for docs/performance.md")
    parser.add_argument("--scenarios", default="s1,s2,s3,s4,s5,s6")
    parser.add_argument(
        "--apps",
        help="default: tripsage,channels,raw, and in full mode tripsage-asgi for S1 and S2",
    )
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/")
    parser.add_argument("--sizes", default="10,100,1000", help="S1 trip sizes")
    parser.add_argument("--duration", type=float, help="seconds of sending per S1 step")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run this service at git revision REV as tripsage-before (a worktree under "
        "bench/results/), for before/after figures of one change in the same run",
    )
    args = parser.parse_args()
    full = args.full
    apps = (args.apps or "tripsage,channels,raw" + (",tripsage-asgi" if full else "")).split(",")
    if args.baseline:
        APP_ROOT["tripsage-before"] = baseline_tree(args.baseline)
        APPS["tripsage-before"] = APPS["tripsage"]
        apps.insert(1, "tripsage-before")
    # The ASGI-send variant differs from tripsage only in how frames are written: S3-S6 do not
    # measure that, so it runs in S1 and S2 only.
    single = [a for a in apps if a != "tripsage-asgi"] or apps
    wanted = set(args.scenarios.split(","))

    members = 2000 if full else 1000
    fx = build_fixture(members, editors=8)
    seconds = 10 if full else 2  # sending time per step
    results: dict[str, Any] = {
        "mode": "full" if full else "short",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "database": fx.env["DATABASE_URL"].split(":", 1)[0],
    }
    started = time.time()
    if "s1" in wanted:
        sizes = [int(n) for n in args.sizes.split(",")]
        results["s1"] = s1(fx, apps, sizes, 10, args.duration or (20 if full else 3))
    if "s2" in wanted:
        # 500 members: big enough that fan-out, not the one trip's write rate, sets the limit
        # (S6 measures that), small enough that daphne's per-event cost leaves room under 100 ms.
        rates = [10, 20, 30, 40, 60, 80, 100, 120, 140, 160, 200] if full else [10, 20, 40, 80]
        results["s2"] = s2(fx, apps, 500, rates, seconds)
    if "s3" in wanted:
        results["s3"] = s3(fx, single, 2000 if full else 500)
    if "s4" in wanted:
        results["s4"] = s4(fx, single, 2000 if full else 400)
    if "s5" in wanted:
        s5_apps = [a for a in single if a != "channels"] or single
        results["s5"] = s5(fx, s5_apps, 1000 if full else 500, 10, seconds)
    if "s6" in wanted:
        s6_apps = tuple(a for a in ("tripsage", "tripsage-before") if a in apps)
        results["s6"] = s6(fx, seconds, s6_apps or ("tripsage",))
    results["seconds"] = time.time() - started
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    log(f"done in {results['seconds']:.0f} s; bench/results/latest.json")
    if not args.no_report:
        from bench import report

        report.write(results)
        log("docs/performance.md updated")


if __name__ == "__main__":
    main()
