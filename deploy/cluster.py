"""A local cluster on loopback (`make cluster`, tests/deploy): nginx in front of N daphne
processes, Redis with one replica watched by three Sentinels, PostgreSQL when it answers (else
SQLite). Every part on free ports of its own; stopped as a whole on Ctrl-C or SIGTERM.

    python -m deploy.cluster [--processes 3] [--port 8080]

Tests use the Cluster class (tests/deploy/conftest.py): its one URL, its processes (kill one,
restart it), its Redis nodes and Sentinels (kill the primary, ask for a failover).
docs/deployment.md describes the topology.
"""

from __future__ import annotations

import argparse
import getpass
import grp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import redis as redis_py

ROOT = Path(__file__).resolve().parent.parent
NGINX_SHARED = ROOT / "deploy" / "nginx" / "tripsage.conf"
# nginx connects to the processes from this address, the only one they trust (TRUSTED_PROXIES):
# a client on 127.0.0.1 that talks straight to a process is not trusted, as in production.
PROXY_ADDRESS = "127.0.0.2"
MASTER_NAME = "tripsage"  # the Sentinel service name (REDIS_SENTINEL_MASTER)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class ClusterError(RuntimeError):
    """A part of the cluster did not start or did not become ready; the message says which,
    with the end of its log."""


class Child:
    """One process of the cluster, its output in a log file of its own."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: Mapping[str, str]):
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL: no handler runs) and, for a fatal one, reap the process."""
        if not self.alive:
            return
        assert self.process is not None
        if sig == signal.SIGKILL:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot die otherwise
        self.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            self.process.wait()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self, tail: int = 0) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-tail:]) if tail else text


class RedisNode(Child):
    """A redis-server (primary or replica, no persistence: a restart comes back empty) or a
    Sentinel."""

    def __init__(self, name: str, port: int, workdir: Path, command: list[str]) -> None:
        super().__init__(name, command, workdir / f"{name}.log", os.environ)
        self.port = port
        self.dir = workdir

    def client(self, timeout: float = 2) -> redis_py.Redis:
        return redis_py.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )  # fmt: skip

    def answers(self) -> bool:
        try:
            return bool(self.client(timeout=1).ping())
        except redis_py.RedisError:
            return False

    def replication(self) -> dict[str, Any]:
        """INFO replication: `role` (master, slave), `master_link_status`, ..."""
        return cast(dict[str, Any], self.client().info("replication"))


# Connections the kernel queues for a process before it accepts them. daphne's -b/-p listen with
# Twisted's default of 50: a reconnect storm overflows it, and every refused SYN waits out the
# client's retransmission (1 s, then 3 s, ...). The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 2048


def daphne_endpoint(interface: str, port: int) -> str:
    """daphne's `-e` endpoint with LISTEN_BACKLOG (the Dockerfile's CMD says the same)."""
    return f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"


class DaphneProcess(Child):
    """One daphne process serving tripsage.asgi on a loopback port (the same port after a
    restart, as nginx's upstream lists it)."""

    def __init__(self, name: str, port: int, workdir: Path, env: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "daphne", "-e", daphne_endpoint("127.0.0.1", port),
                   "tripsage.asgi:application"]  # fmt: skip
        super().__init__(name, command, workdir / f"{name}.log", env)
        self.port = port

    @property
    def address(self) -> str:
        """As nginx names it in $upstream_addr (the X-Upstream header)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return _http_ok(f"{self.url}/healthz")

    def restart(self) -> None:
        """Start it again (after kill or stop) and wait until it answers."""
        self.stop()
        self.start()
        _wait(self.healthy, 30, f"{self.name} to answer after a restart", self)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait(ready: Callable[[], bool], timeout: float, what: str, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if child is not None and child.process is not None and child.process.poll() is not None:
            raise ClusterError(
                f"{child.name} exited ({child.process.returncode}):\n{child.log(40)}"
            )
        time.sleep(0.1)
    detail = f":\n{child.log(40)}" if child is not None else ""
    raise ClusterError(f"waited {timeout:.0f} s for {what}{detail}")


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def ensure_postgres_database(name: str, host: str = "127.0.0.1", port: int = 5432) -> str:
    """The URL of database `name` on the local PostgreSQL (user postgres), created if missing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                         connect_timeout=5, autocommit=True) as conn:  # fmt: skip
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgres://postgres@{host}:{port}/{name}"


class Cluster:
    """The local topology. `start()` brings everything up and waits until it is ready; `stop()`
    (or leaving the `with` block) ends every process it started, whatever state they are in.

    `settings` is the processes' DJANGO_SETTINGS_MODULE and `env` more of their environment
    (timers, limits); `database_url` None: PostgreSQL's `database_name` on 127.0.0.1:5432 when it
    answers (created if missing), else a SQLite file in the work directory. `migrate` and `seed`
    run `manage.py migrate` and `seed_demo` once, before the processes start."""

    def __init__(
        self,
        *,
        processes: int = 3,
        port: int = 0,
        workdir: Path | None = None,
        settings: str = "tripsage.settings.base",
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        database_name: str = "tripsage_cluster",
        sentinels: int = 3,
        replica: bool = True,
        down_after_ms: int = 5000,
        failover_timeout_ms: int = 10000,
        migrate: bool = True,
        seed: bool = True,
        say: Callable[[str], None] = print,
    ) -> None:
        if processes < 1:
            raise ValueError("a cluster needs at least one process")
        self.say = say
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tripsage-cluster-"))
        self.port = port or free_port()
        self.settings = settings
        self.extra_env = dict(env or {})
        self.database_url = database_url
        self.database_name = database_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.do_migrate, self.do_seed = migrate, seed

        self.redis_primary = self._redis_node("redis-primary", [])
        self.redis_replica: RedisNode | None = None
        if replica:
            self.redis_replica = self._redis_node(
                "redis-replica", ["--replicaof", "127.0.0.1", str(self.redis_primary.port)]
            )
        self.sentinels = [self._sentinel(n) for n in range(1, sentinels + 1)]
        self.processes: list[DaphneProcess] = []
        self._process_count = processes
        self.nginx: Child | None = None
        self._started: list[Child] = []

    # -- what tests and users see -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The one URL: pages, REST, admin, static files and sockets."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        """The processes' REDIS_URL (the first primary; with Sentinels they follow failovers)."""
        return f"redis://127.0.0.1:{self.redis_primary.port}/0"

    @property
    def sentinel_ports(self) -> list[int]:
        return [sentinel.port for sentinel in self.sentinels]

    @property
    def redis_nodes(self) -> list[RedisNode]:
        return [self.redis_primary, *([self.redis_replica] if self.redis_replica else [])]

    def process_at(self, upstream: str) -> DaphneProcess:
        """The process nginx named in $upstream_addr (the X-Upstream response header)."""
        for process in self.processes:
            if process.address == upstream.split(",")[-1].strip():
                return process
        raise KeyError(f"no process of this cluster at {upstream!r}")

    def process_env(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"
        }
        assert self.database_url is not None
        origins = f"{self.url},http://localhost:{self.port}"
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings,
            DJANGO_DEBUG="false",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            TRUSTED_PROXIES=PROXY_ADDRESS,
            REALTIME_ALLOWED_ORIGINS=origins,
            CSRF_TRUSTED_ORIGINS=origins,
            PYTHONUNBUFFERED="1",
        )
        if self.sentinels:
            env.update(
                REDIS_SENTINELS=",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
                REDIS_SENTINEL_MASTER=MASTER_NAME,
            )
        env.update(self.extra_env)
        return env

    # -- Redis --------------------------------------------------------------------------------

    def _redis_node(self, name: str, more: list[str]) -> RedisNode:
        port = free_port()
        data = self.workdir / name
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(data), *more]  # fmt: skip
        return RedisNode(name, port, self.workdir, command)

    def _sentinel(self, number: int) -> RedisNode:
        port = free_port()
        name = f"sentinel-{number}"
        # Sentinel rewrites its configuration file as it learns: a file of its own, per run.
        conf = self.workdir / name / "sentinel.conf"
        return RedisNode(name, port, self.workdir, ["redis-server", str(conf), "--sentinel"])

    def _write_sentinel_conf(self, sentinel: RedisNode) -> None:
        conf = sentinel.dir / sentinel.name / "sentinel.conf"
        conf.write_text(
            f"port {sentinel.port}\n"
            "bind 127.0.0.1\n"
            f"dir {conf.parent}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.redis_primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )

    def primary_port(self) -> int:
        """The current primary's port, as the Sentinels say (without Sentinels: the first)."""
        for sentinel in self.sentinels:
            try:
                address = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis_py.RedisError:
                continue
            if address:
                return int(address[1])
        return self.redis_primary.port

    def primary(self) -> RedisNode:
        port = self.primary_port()
        return next(node for node in self.redis_nodes if node.port == port)

    def kill_primary(self) -> RedisNode:
        """SIGKILL the current primary; the node, to restart later (restart_redis)."""
        node = self.primary()
        node.kill()
        return node

    def restart_redis(self, node: RedisNode) -> None:
        """Start a killed Redis node again, empty, as a replica of the current primary (what
        the Sentinels would make of it anyway)."""
        primary = self.primary_port()
        command = [part for part in node.command]
        if "--replicaof" in command:
            at = command.index("--replicaof")
            del command[at : at + 3]
        if primary != node.port:
            command += ["--replicaof", "127.0.0.1", str(primary)]
        node.command = command
        node.start()
        _wait(node.answers, 10, f"{node.name} to answer", node)

    def sentinel_failover(self, timeout: float = 30, until_demoted: bool = True) -> int:
        """SENTINEL FAILOVER: the replica is promoted; returns the new primary's port once the
        Sentinels name it, it answers as a primary and (`until_demoted`) the old one serves as
        its replica."""
        if not self.sentinels:
            raise ClusterError("this cluster runs without Sentinels")
        before = self.primary_port()
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        return self.wait_for_new_primary(before, timeout, until_demoted)

    def wait_for_new_primary(
        self, before: int, timeout: float = 30, until_demoted: bool = True
    ) -> int:
        """Until every live Sentinel names a primary other than `before`, that node answers as
        a primary and (`until_demoted`) `before`, if it still runs, has been turned into a
        replica (until then it takes writes that it drops when it resyncs, some seconds after
        the switch); returns the new primary's port."""

        def promoted() -> bool:
            named = set()
            for sentinel in self.sentinels:
                try:
                    address = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
                except redis_py.RedisError:
                    continue
                named.add(int(address[1]))
            if len(named) != 1 or named == {before}:
                return False
            (port,) = named
            try:
                if next(n for n in self.redis_nodes if n.port == port).replication()["role"] != (
                    "master"
                ):
                    return False
                old = next(n for n in self.redis_nodes if n.port == before)
                return not until_demoted or not old.alive or old.replication()["role"] == "slave"
            except redis_py.RedisError:
                return False

        _wait(promoted, timeout, "the Sentinels to promote the replica")
        return self.primary_port()

    def _redis_ready(self) -> list[str]:
        """What is not ready yet among the Redis nodes and Sentinels (empty: all of it)."""
        waiting = [node.name for node in self.redis_nodes if not node.answers()]
        if waiting:
            return waiting
        roles = []
        for node in self.redis_nodes:  # after a failover the first replica may be the primary
            try:
                info = node.replication()
            except redis_py.RedisError:
                info = {}
            roles.append(info.get("role"))
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                waiting.append(f"{node.name}'s link to the primary")
        if roles.count("master") != 1:
            waiting.append("one primary")
        for sentinel in self.sentinels:
            try:
                client = sentinel.client()
                others = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
                replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
            except redis_py.RedisError:
                waiting.append(sentinel.name)
                continue
            if len(others) < len(self.sentinels) - 1:
                waiting.append(f"{sentinel.name} to see the other Sentinels")
            if self.redis_replica is not None and not replicas:
                waiting.append(f"{sentinel.name} to see the replica")
        return waiting

    # -- start and stop -----------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start every part and wait until it is ready (ClusterError otherwise)."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        if not shutil.which("redis-server"):
            raise ClusterError("redis-server is needed (Debian: apt-get install redis-server)")
        if not Path(NGINX).exists():
            raise ClusterError("nginx is needed (Debian: apt-get install nginx-light)")
        if port_in_use(self.port):
            raise ClusterError(
                f"port {self.port} is in use: choose another (make cluster PORT=8081, or "
                "--port 0 for any free port)"
            )
        for node in [*self.redis_nodes, *self.sentinels]:
            (node.dir / node.name).mkdir(parents=True, exist_ok=True)
        for node in self.redis_nodes:
            self._launch(node)
        for node in self.redis_nodes:
            _wait(node.answers, 10, f"{node.name} to answer", node)
        for sentinel in self.sentinels:
            self._write_sentinel_conf(sentinel)
            self._launch(sentinel)

        self._prepare_database()
        env = self.process_env()
        for number in range(1, self._process_count + 1):
            process = DaphneProcess(f"daphne-{number}", free_port(), self.workdir, env)
            self.processes.append(process)
            self._launch(process)
        self._start_nginx()
        self.wait_ready(timeout)

    def _launch(self, child: Child) -> None:
        self._started.append(child)
        child.start()

    def _prepare_database(self) -> None:
        if self.database_url is None:
            if postgres_answers():
                self.database_url = ensure_postgres_database(self.database_name)
            else:
                self.database_url = f"sqlite:///{self.workdir / 'cluster.sqlite3'}"
        self.say(f"Database: {self.database_url}")
        commands = []
        if self.do_migrate:
            commands.append(["migrate", "--noinput"])
        if self.do_seed:
            commands.append(["seed_demo"])
        for command in commands:
            log = self.workdir / f"manage-{command[0]}.log"
            with log.open("wb") as out:
                code = subprocess.call([sys.executable, "manage.py", *command], cwd=ROOT,
                                       env=self.process_env(), stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
            if code != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise ClusterError(f"manage.py {' '.join(command)} failed ({code}):\n{tail}")
            if command[0] == "seed_demo":
                self.say(log.read_text(errors="replace").strip())

    def nginx_conf(self) -> str:
        """The local part of nginx's configuration: the listen port, the upstream, the address
        nginx connects from; the proxy's behaviour is deploy/nginx/tripsage.conf."""
        temp = self.workdir / "nginx"
        servers = "\n".join(
            f"        server {p.address} max_fails=1 fail_timeout=2s;" for p in self.processes
        )
        user = ""
        if os.geteuid() == 0:  # workers would otherwise run as nobody, without our files
            user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};\n"
        return f"""{user}worker_processes 1;
worker_rlimit_nofile 65536;
events {{
    worker_connections 16384;  # two per proxied socket
}}
http {{
    access_log {self.workdir / "nginx-access.log"};
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};

    upstream tripsage {{
        least_conn;
{servers}
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{self.port};
        # The only address the processes trust (TRUSTED_PROXIES): not a client's 127.0.0.1.
        proxy_bind {PROXY_ADDRESS};
        # Which process served a request or a socket (tests/deploy read it).
        add_header X-Upstream $upstream_addr always;
        include {NGINX_SHARED};
    }}
}}
"""

    def _start_nginx(self) -> None:
        (self.workdir / "nginx").mkdir(exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.nginx_conf())
        pid = self.workdir / "nginx.pid"
        command = [NGINX, "-p", str(self.workdir), "-e", "stderr", "-c", str(conf),
                   "-g", f"daemon off; master_process on; pid {pid};"]  # fmt: skip
        self.nginx = Child("nginx", command, self.workdir / "nginx.log", os.environ)
        self._launch(self.nginx)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every part answers: Redis and its replica linked, each Sentinel seeing the
        others and the replica, each process's /healthz, and /healthz through the proxy."""
        deadline = time.monotonic() + timeout
        waiting: list[str] = []
        while time.monotonic() < deadline:
            for child in self._started:
                if child.process is not None and child.process.poll() is not None:
                    raise ClusterError(
                        f"{child.name} exited ({child.process.returncode}):\n{child.log(40)}"
                    )
            waiting = self._redis_ready()
            waiting += [p.name for p in self.processes if not p.healthy()]
            if self.nginx is not None and not _http_ok(f"{self.url}/healthz"):
                waiting.append("nginx")
            if not waiting:
                return
            time.sleep(0.2)
        raise ClusterError(f"not ready within {timeout:.0f} s: {', '.join(waiting)}")

    def stop(self) -> None:
        """End every process the cluster started: the proxy first, then the processes, then
        the Sentinels and Redis. Safe to call twice, or after a failed start."""
        for child in reversed(self._started):
            try:
                child.stop()
            except Exception as exc:  # stop the others whatever one of them does
                self.say(f"stopping {child.name}: {exc}")
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [child.pid for child in self._started if child.pid is not None and child.alive]

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Stop(Exception):
    """SIGTERM, handled as Ctrl-C is."""


def _stop_on_signal(signum: int, frame: Any) -> None:
    raise _Stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--processes", "-n", type=int, default=int(os.environ.get("N", 3)),
        help="daphne processes behind the proxy (default 3, or $N)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=8080,
        help="the proxy's port on 127.0.0.1 (default 8080; 0: any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"),
        help="default: $DATABASE_URL, else PostgreSQL on 127.0.0.1:5432 when it answers, "
        "else SQLite",
    )  # fmt: skip
    parser.add_argument(
        "--database-name", default="tripsage_cluster",
        help="the PostgreSQL database to use (created if missing)",
    )  # fmt: skip
    parser.add_argument("--settings", default="tripsage.settings.base")
    parser.add_argument(
        "--down-after-ms", type=int, default=5000,
        help="Sentinel: a primary silent this long is down",
    )  # fmt: skip
    parser.add_argument("--failover-timeout-ms", type=int, default=10000)
    parser.add_argument("--no-seed", action="store_true", help="skip seed_demo")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop_on_signal)
    cluster = Cluster(
        processes=args.processes, port=args.port, settings=args.settings,
        database_url=args.database_url, database_name=args.database_name,
        down_after_ms=args.down_after_ms, failover_timeout_ms=args.failover_timeout_ms,
        seed=not args.no_seed, say=lambda text: print(text, flush=True),
    )  # fmt: skip
    try:
        cluster.start()
        print(
            f"\nTripSage Realtime: {cluster.url}/  ({args.processes} processes behind nginx; "
            f"Redis {cluster.redis_primary.port} + replica, Sentinels "
            f"{','.join(map(str, cluster.sentinel_ports))}; logs in {cluster.workdir})\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        reported: set[str] = set()
        while True:
            for child in cluster._started:
                if not child.alive and child.name not in reported:
                    reported.add(child.name)
                    print(f"{child.name} exited; its log: {child.log_path}", flush=True)
            time.sleep(1)
    except (KeyboardInterrupt, _Stop):
        print("\nStopping the cluster...", flush=True)
    except ClusterError as exc:
        print(f"The cluster did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the stopping.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
