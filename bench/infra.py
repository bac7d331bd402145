"""The harness's parts: apps under daphne, nginx in front of them, load-generator workers, the data
every app shares, and one fan-out measurement (receivers connected once, steps of open-loop edits).

Scenarios (bench/harness.py, bench/reconnect.py, bench/c10k.py) are built from these; what they
read from Redis and PostgreSQL while they run is bench/probes.py.
"""

from __future__ import annotations

import getpass
import grp
import math
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from deploy.cluster import daphne_endpoint  # noqa: E402

APPS = {
    "tripsage": "tripsage.asgi:application",
    "channels": "bench.apps.plain_channels:application",
    "raw": "bench.apps.raw_asgi:app",
    "traced": "bench.apps.traced:application",  # tripsage under tracemalloc, for profiling S3
    # TripSage with every frame through daphne's ASGI send (no direct writes, realtime.direct):
    # what the direct writes are worth, measured in the same run.
    "tripsage-asgi": "tripsage.asgi:application",
}
APP_ENV: dict[str, dict[str, str]] = {"tripsage-asgi": {"REALTIME_DIRECT_WRITES": "false"}}
# Apps served from another source tree than this one: "tripsage-before" (--baseline REV) is this
# service at an earlier commit, so a change's before and after are measured in the same run.
APP_ROOT: dict[str, Path] = {}
TEXT_FIELDS = ["name", "destination", "notes"]  # one per sender: a sender never conflicts
SPAWN = multiprocessing.get_context("spawn")
# S5's proxy: BENCH_NGINX, else nginx on PATH, else Debian's place for it.
NGINX = os.environ.get("BENCH_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_SHARED = ROOT / "deploy" / "nginx" / "tripsage.conf"
# nginx connects to the processes from this address, the one they trust (TRUSTED_PROXIES), as
# deploy/cluster.py does: each client then counts as itself in the per-address limits.
PROXY_ADDRESS = "127.0.0.2"
LOGS = ROOT / "bench" / "results" / "logs"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


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
    """The p-th percentile of sorted `values` (nearest rank)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(len(values) * p / 100) - 1))]


def raise_open_files() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; children (daphne, nginx, the
    load generators) inherit it. C10k needs 10,000 sockets in one server process, more than the
    usual soft limit of 1,024. Returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def wait_listening(
    port: int, process: subprocess.Popen[bytes], name: str, timeout: float = 30
) -> None:
    deadline = time.time() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start-up (code {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{name} did not listen on {port}") from None
            time.sleep(0.05)


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Servers:
    """One app under `count` daphne processes, each on a port of its own."""

    app: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    # CPU seconds of processes that were killed or replaced, so cpu() stays monotonic.
    retired_cpu: float = 0.0

    @property
    def targets(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    def cpu(self) -> float:
        return self.retired_cpu + sum(
            cpu_seconds(p.pid) for p in self.processes if p.poll() is None
        )

    def rss(self) -> int:
        return sum(rss_bytes(p.pid) for p in self.processes if p.poll() is None)

    def launch(self, port: int) -> subprocess.Popen[bytes]:
        root = APP_ROOT.get(self.app, ROOT)
        LOGS.mkdir(parents=True, exist_ok=True)
        with (LOGS / f"{self.app}-{port}.log").open("ab") as log_file:
            return subprocess.Popen(
                # As the image and `make cluster` listen: with LISTEN_BACKLOG, not Twisted's 50
                # (a reconnect storm's SYNs would otherwise wait out TCP's retransmissions).
                [sys.executable, "-m", "daphne", "-e", daphne_endpoint("127.0.0.1", port),
                 APPS[self.app]],
                cwd=root,
                env={
                    **os.environ,
                    **self.env,
                    **APP_ENV.get(self.app, {}),
                    "PYTHONPATH": str(root),
                    "LOG_LEVEL": "WARNING",
                },
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self, index: int) -> None:
        """SIGKILL one process, as a crash or an OOM kill would: no close frames, no cleanup."""
        process = self.processes[index]
        try:
            self.retired_cpu += cpu_seconds(process.pid)
        except OSError:
            pass
        process.send_signal(signal.SIGKILL)
        process.wait()

    def restart(self, index: int) -> None:
        """Start process `index` again on its port (after kill) and wait until it listens."""
        port = self.ports[index]
        self.processes[index] = self.launch(port)
        wait_listening(port, self.processes[index], f"{self.app} server")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_servers(app: str, env: dict[str, str], count: int = 1) -> Servers:
    servers = Servers(app, env)
    for _ in range(count):
        port = free_port()
        servers.processes.append(servers.launch(port))
        servers.ports.append(port)
    try:
        for port, process in zip(servers.ports, servers.processes, strict=True):
            wait_listening(port, process, f"{app} server")
    except BaseException:
        servers.stop()
        raise
    return servers


class Proxy:
    """nginx in front of the processes of `servers`, configured as deploy/cluster.py does: the
    shared behaviour is deploy/nginx/tripsage.conf, included in a server block with the local
    upstream (least_conn) and listen port."""

    def __init__(self, servers: Servers) -> None:
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError(
                f"S5 runs behind nginx and there is none at {NGINX}: install it (Debian: "
                "apt-get install nginx-light) or point BENCH_NGINX at an nginx binary"
            )
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        (self.dir / "temp").mkdir()
        conf = self.dir / "nginx.conf"
        conf.write_text(self.conf(servers))
        pid = self.dir / "nginx.pid"
        command = [NGINX, "-p", str(self.dir), "-e", "stderr", "-c", str(conf),
                   "-g", f"daemon off; master_process on; pid {pid};"]  # fmt: skip
        LOGS.mkdir(parents=True, exist_ok=True)
        with (LOGS / f"nginx-{self.port}.log").open("ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.process, "nginx")
        self.workers = _children(self.process.pid)

    @property
    def targets(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.port)]

    def conf(self, servers: Servers) -> str:
        upstream = "\n".join(f"        server 127.0.0.1:{p};" for p in servers.ports)
        user = ""
        if os.geteuid() == 0:  # workers would otherwise run as nobody, without our files
            user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};\n"
        temp = self.dir / "temp"
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return f"""{user}worker_processes 1;
worker_rlimit_nofile {soft};
events {{
    worker_connections {max(1024, soft // 2)};
}}
http {{
    access_log off;
    client_body_temp_path {temp};
    proxy_temp_path {temp};
    fastcgi_temp_path {temp};
    uwsgi_temp_path {temp};
    scgi_temp_path {temp};

    upstream tripsage {{
        least_conn;
{upstream}
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        proxy_bind {PROXY_ADDRESS};
        include {NGINX_SHARED};
    }}
}}
"""

    def cpu(self) -> float:
        return sum(_cpu_or_zero(pid) for pid in [self.process.pid, *self.workers])

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def _children(pid: int, timeout: float = 5) -> list[int]:
    """The child processes of `pid` (nginx's workers), from /proc."""
    deadline = time.time() + timeout
    while True:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(stat.parent.name))
        if found or time.time() > deadline:
            return found
        time.sleep(0.05)


# -- worker processes --------------------------------------------------------------------------


class Worker:
    """A load-generator process (bench/loadgen.py) driven over a Pipe."""

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

    def ask(self, *command: Any, timeout: float = 180) -> Any:
        self.send(*command)
        return self.recv(timeout)

    def close(self) -> None:
        close_all([self])


def close_all(workers: list[Worker]) -> None:
    """Tell every worker to close its sockets, then wait for them all (in parallel: each takes
    a moment to say goodbye)."""
    for worker in workers:
        try:
            worker.send("close")
        except (BrokenPipeError, OSError):
            pass
    for worker in workers:
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()


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
    # C10k's trip: the members above and more (the same trip when no more are needed); the
    # senders are members of it too.
    big_trip_path: str = ""
    big_tokens: list[str] = field(default_factory=list)


def database_url() -> str:
    """BENCH_DATABASE_URL as given, else a fresh PostgreSQL database BENCH_DATABASE (default
    tripsage_bench) when PostgreSQL answers on 127.0.0.1:5432, else a throw-away SQLite file."""
    configured = os.environ.get("BENCH_DATABASE_URL")
    if configured:
        return configured
    import psycopg

    name = os.environ.get("BENCH_DATABASE", "tripsage_bench")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"BENCH_DATABASE must be a plain identifier, not {name!r}")
    try:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            db.execute(f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:5432/{name}"
    except psycopg.Error:
        path = Path("/tmp") / f"tripsage-bench-{uuid.uuid4().hex[:8]}.sqlite3"
        return f"sqlite:///{path}"


def build_fixture(
    members: int, editors: int, big: int = 0, redis_url: str | None = None
) -> Fixture:
    """`members` editors of one trip (S1-S7), `editors` users with a trip each (S6), and, when
    `big` exceeds `members`, a second trip of `big` members (C10k)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "tripsage.settings.base",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
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
        # nginx (S5) connects from this address: each client counts as itself behind it.
        "TRUSTED_PROXIES": PROXY_ADDRESS,
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
    extra = max(0, big - members)
    users = user_model.objects.bulk_create(
        [user_model(username=f"u{i}") for i in range(members + len(TEXT_FIELDS) + editors + extra)]
    )
    trip = Trip.objects.create(name="Bench trip", created_by=users[0])
    TripMember.objects.bulk_create(
        TripMember(trip=trip, user=u, role="editor") for u in users[: members + len(TEXT_FIELDS)]
    )
    first_editor = members + len(TEXT_FIELDS)
    editor_users = users[first_editor : first_editor + editors]
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

    member_tokens = [token(u) for u in users[:members]]
    fixture = Fixture(
        env=env,
        trip_path=f"/ws/trips/{trip.pk}/",
        member_tokens=member_tokens,
        sender_tokens=[token(u) for u in users[members:first_editor]],
        editor_paths=[f"/ws/trips/{t.pk}/" for t in editor_trips],
        editor_tokens=[token(u) for u in editor_users],
        big_trip_path=f"/ws/trips/{trip.pk}/",
        big_tokens=member_tokens,
    )
    if extra:
        extra_users = users[first_editor + editors :]
        big_trip = Trip.objects.create(name="C10k trip", created_by=users[0])
        TripMember.objects.bulk_create(
            TripMember(trip=big_trip, user=u, role="editor")
            for u in [*users[:first_editor], *extra_users]
        )
        fixture.big_trip_path = f"/ws/trips/{big_trip.pk}/"
        fixture.big_tokens = member_tokens + [token(u) for u in extra_users]
    return fixture


# -- fan-out: receivers connected once, steps of open-loop edits --------------------------------


class Fanout:
    """`tokens` connected to `path` over `workers` receiver processes (round robin over
    `targets`) and the senders (on `sender_targets`, default the first target); each `step`
    sends open-loop edits at a rate and measures latency on every receiver."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        path: str,
        tokens: list[str],
        sender_tokens: list[str],
        *,
        workers: int | None = None,
        sender_targets: list[tuple[str, int]] | None = None,
        concurrency: int = 50,
        settle: float = 1.0,
    ) -> None:
        workers = workers or (2 if len(tokens) >= 400 else 1)
        self.receivers = [
            Worker(
                loadgen.receivers,
                {"targets": targets, "path": path, "tokens": g, "concurrency": concurrency},
            )
            for g in split(tokens, workers)
        ]
        self.sender = Worker(
            loadgen.senders,
            {
                "targets": sender_targets or targets[:1],
                "path": path,
                "tokens": sender_tokens,
                "fields": TEXT_FIELDS,
            },
        )
        try:
            ready = [w.recv(600) for w in self.receivers]
            self.connected = sum(r[1] for r in ready)
            self.connect_errors = [e for r in ready for e in r[2]]
            # Connects refused with a hint (admission control) and tried again, as clients do.
            self.refused = sum(r[3] for r in ready)
            if self.connect_errors:
                log(f"{len(self.connect_errors)} connects failed, e.g. {self.connect_errors[0]}")
            _, senders, sender_errors, sender_refused = self.sender.recv()
            self.refused += sender_refused
            if not senders:
                raise RuntimeError(f"no sender could connect: {sender_errors[:1]}")
            time.sleep(settle)  # presence settles
        except BaseException:
            self.close()
            raise

    def step(
        self,
        rate: float,
        duration: float,
        cpu: dict[str, Callable[[], float]],
        *,
        stragglers: float = 15,
    ) -> dict[str, Any]:
        """Open-loop edits at `rate` for `duration`; latency on every receiver. `cpu` names
        the CPU-seconds counters read around the step (`server` first): each is reported per
        delivery as `<name>_cpu_us_per_delivery` (`server`: `cpu_us_per_delivery`)."""
        for w in self.receivers:
            w.send("reset")
        before = {name: read() for name, read in cpu.items()}
        self.sender.send("send", rate, duration)
        sent = self.sender.recv(duration + 120)[1]
        # Wait for stragglers: until every delivery arrived, or `stragglers` seconds (what is
        # still missing then counts as not delivered).
        deadline = time.time() + stragglers
        while time.time() < deadline:
            time.sleep(0.25)
            arrived = sum(w.ask("count")[1] for w in self.receivers)
            if arrived >= sent * self.connected:
                break
        window = duration + (time.time() - deadline + stragglers)
        used = {name: read() - before[name] for name, read in cpu.items()}
        latencies: list[float] = []
        closes: dict[int, int] = {}
        for w in self.receivers:
            _, raw, codes = w.ask("collect")
            values = array("d")
            values.frombytes(raw)
            latencies.extend(values)
            for code, count in codes.items():
                closes[code] = closes.get(code, 0) + count
        outcome = self.sender.ask("collect")[1]
        latencies.sort()
        expected = sent * self.connected  # a failed connect is reported, not as undelivered
        deliveries = max(1, len(latencies))
        row: dict[str, Any] = {
            "members": self.connected + len(self.connect_errors),
            "connected": self.connected,
            "connect_errors": len(self.connect_errors),
            "connects_refused": self.refused,
            "rate": rate,
            "sent": sent,
            "acks": outcome,
            "delivered": len(latencies) / expected if expected else 0.0,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else float("nan"),
            "deliveries_per_s": len(latencies) / duration,
            "closes": closes,
        }
        for name, seconds in used.items():
            key = "cpu_us_per_delivery" if name == "server" else f"{name}_cpu_us_per_delivery"
            row[key] = seconds / deliveries * 1e6
        row["server_cpu_share"] = used.get("server", 0.0) / window
        return row

    def close(self) -> None:
        close_all([*self.receivers, self.sender])


def fanout_run(
    servers: Servers, fx: Fixture, members: int, rate: float, duration: float, **options: Any
) -> dict[str, Any]:
    """One step of open-loop edits at `rate` for `duration` to `members` receivers."""
    stragglers = options.pop("stragglers", 15)
    session = Fanout(
        servers.targets, fx.trip_path, fx.member_tokens[:members], fx.sender_tokens, **options
    )
    try:
        return session.step(rate, duration, {"server": servers.cpu}, stragglers=stragglers)
    finally:
        session.close()
