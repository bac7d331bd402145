"""What a run costs Redis and PostgreSQL: a private Redis for the run, and before/after readings of
Redis's INFO (CPU, commands, bytes) and of our database's backends (CPU, rows, transactions),
from which the per-operation costs and the projection in docs/performance.md are computed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis as redis_py

from bench.infra import cpu_seconds, free_port, stop_process


class PrivateRedis:
    """A redis-server of the run's own on a free port, without persistence: the run's INFO
    readings then count only the run's own commands (the shared Redis serves other work)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is needed for the bench's own Redis (apt-get install "
                "redis-server), or pass --redis-url to use a running one"
            )
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--maxclients", "20000"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_py.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis_py.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class RedisReading:
    cpu: float  # seconds, user + system, the whole server
    calls: dict[str, int]
    usec: dict[str, int]
    net_in: int
    net_out: int
    at: float


class RedisCost:
    """INFO readings of one Redis; `delta` is what happened between two of them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis_py.Redis.from_url(url, socket_timeout=5)

    def read(self) -> RedisReading:
        info = self.client.info("all")
        calls, usec = {}, {}
        for key, value in info.items():
            if key.startswith("cmdstat_"):
                name = key.removeprefix("cmdstat_")
                calls[name] = int(value["calls"])
                usec[name] = int(value["usec"])
        return RedisReading(
            cpu=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            calls=calls,
            usec=usec,
            net_in=int(info["total_net_input_bytes"]),
            net_out=int(info["total_net_output_bytes"]),
            at=time.time(),
        )

    @staticmethod
    def delta(before: RedisReading, after: RedisReading) -> dict[str, Any]:
        """CPU seconds, calls and usec per command (the harness's own INFO left out), bytes."""
        calls = {
            name: n - before.calls.get(name, 0)
            for name, n in after.calls.items()
            if name != "info" and n - before.calls.get(name, 0) > 0
        }
        return {
            "cpu_s": after.cpu - before.cpu,
            "calls": calls,
            "usec": {name: after.usec[name] - before.usec.get(name, 0) for name in calls},
            "net_in": after.net_in - before.net_in,
            "net_out": after.net_out - before.net_out,
            "seconds": after.at - before.at,
        }


@dataclass
class PostgresReading:
    cpu: dict[int, float]  # backend pid -> CPU seconds
    inserted: int
    updated: int
    deleted: int
    commits: int
    wal: int  # cluster-wide WAL position (bytes): other databases' writes count too


class PostgresCost:
    """Readings of the run's database: its backends' CPU from /proc (PostgreSQL runs on this
    machine), rows written from pg_stat_user_tables, transactions from pg_stat_database."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        parsed = urlparse(database_url)
        self.enabled = parsed.scheme.startswith("postgres")
        self.conn = None
        if self.enabled:
            self.conn = psycopg.connect(
                f"postgresql://{parsed.username or 'postgres'}@{parsed.hostname}:"
                f"{parsed.port or 5432}/{parsed.path.lstrip('/')}",
                autocommit=True,
            )

    def read(self) -> PostgresReading | None:
        if self.conn is None:
            return None
        pids = [
            row[0]
            for row in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
        cpu = {}
        for pid in pids:
            try:
                cpu[pid] = cpu_seconds(pid)
            except OSError:  # not on this machine, or just exited
                pass
        # Other backends report their table counters when they go idle, within a second or so
        # (PostgreSQL 15: at most every PGSTAT_MIN_INTERVAL), or when they exit.
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        ins, upd, dele = self.conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), "
            "coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables"
        ).fetchone()
        commits = self.conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]
        wal = self.conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        ).fetchone()[0]
        return PostgresReading(cpu, int(ins), int(upd), int(dele), int(commits), int(wal))

    @staticmethod
    def delta(
        before: PostgresReading | None,
        cpu_at: PostgresReading | None,
        after: PostgresReading | None,
    ) -> dict[str, Any] | None:
        """Backend CPU between `before` and `cpu_at` (read while the backends live); rows,
        transactions and WAL between `before` and `after` (read once their counters are in)."""
        if before is None or cpu_at is None or after is None:
            return None
        cpu = sum(seconds - before.cpu.get(pid, 0.0) for pid, seconds in cpu_at.cpu.items())
        return {
            "backend_cpu_s": cpu,
            "rows_inserted": after.inserted - before.inserted,
            "rows_updated": after.updated - before.updated,
            "rows_deleted": after.deleted - before.deleted,
            "commits": after.commits - before.commits,
            "wal_bytes": after.wal - before.wal,
        }

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def publish_cost(
    url: str, subscribers: tuple[int, ...] = (0, 1, 2, 4, 8, 16), size: int = 360, count: int = 3000
) -> dict[str, Any]:
    """Redis CPU per PUBLISH of a `size`-byte message against the number of subscribed
    connections (one per server process in our layer): `count` publishes, one round trip each,
    as the service sends them. Returns the readings and a least-squares line, microseconds:
    `base` + `per_subscriber` x subscribers."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    client = redis_py.Redis.from_url(url, socket_timeout=5)
    cost = RedisCost(url)
    channel = f"bench-calibration-{time.time_ns()}"
    payload = b"x" * size
    points = []
    for n in subscribers:
        readers = [_Subscriber(host, port, channel) for _ in range(n)]
        try:
            deadline = time.monotonic() + 5
            while client.pubsub_numsub(channel)[0][1] < n and time.monotonic() < deadline:
                time.sleep(0.01)
            before = cost.read()
            for _ in range(count):
                client.publish(channel, payload)
            after = cost.read()
        finally:
            for reader in readers:
                reader.close()
        points.append((n, (after.cpu - before.cpu) / count * 1e6))
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return {
        "size": size,
        "count": count,
        "points": points,
        "base_us": mean_y - slope * mean_x,
        "per_subscriber_us": slope,
    }


class _Subscriber:
    """A raw connection SUBSCRIBEd to one channel, drained by a thread (Redis would otherwise
    buffer what it cannot write)."""

    def __init__(self, host: str, port: int, channel: str) -> None:
        self.sock = socket.create_connection((host, port))
        name = channel.encode()
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(name), name))
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=2)
