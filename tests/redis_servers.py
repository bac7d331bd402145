"""Redis servers of a test's own, on free ports (never the shared one on 6379, which other tests
and sessions use): one server that a test may freeze, kill or wipe, and a Sentinel group (a
primary, a replica and three Sentinels) that a test may fail over."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_py


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart comes back empty."""

    def __init__(self, tmp_dir: Path, replica_of: int | None = None) -> None:
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is needed (apt-get install redis-server)", pytrace=False)
        self.port = free_port()
        self.dir = tmp_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.replica_of = replica_of
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis_py.Redis:
        return redis_py.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self.dir)]  # fmt: skip
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis_py.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as in a partition."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot die otherwise
            self.process.kill()
            self.process.wait()

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def flushall(self) -> None:
        self.client().flushall()

    def stop(self) -> None:
        self.kill()


class SentinelGroup:
    """A primary, one replica and three Sentinels watching them as `master` (quorum 2), with
    short timers: a dead primary is replaced within a few seconds."""

    def __init__(self, tmp_dir: Path, master: str = "tripsage", down_after_ms: int = 1000) -> None:
        self.master = master
        self.servers = [RedisServer(tmp_dir / "primary")]
        self.servers.append(RedisServer(tmp_dir / "replica", replica_of=self.servers[0].port))
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports = [free_port() for _ in range(3)]
        for number, port in enumerate(self.sentinel_ports):
            folder = tmp_dir / f"sentinel-{number}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"  # Sentinel rewrites its file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {master} 127.0.0.1 {self.servers[0].port} 2\n"
                f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
                f"sentinel failover-timeout {master} {max(4 * down_after_ms, 3000)}\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
                )
            )
        self.wait_for(self._replica_in_sync, "the replica to sync")
        self.wait_for(lambda: len(self._replicas_seen()) == 3, "the Sentinels to see the replica")

    @property
    def sentinels_setting(self) -> str:
        """REDIS_SENTINELS for these Sentinels."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def sentinel(self, number: int = 0) -> redis_py.Redis:
        return redis_py.Redis(port=self.sentinel_ports[number], socket_timeout=5)

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel names it."""
        return int(self.sentinel().sentinel_get_master_addr_by_name(self.master)[1])

    def primary(self) -> RedisServer:
        port = self.primary_port()
        return next(server for server in self.servers if server.port == port)

    def _replica_in_sync(self) -> bool:
        return any(
            server.client().info("replication").get("master_link_status") == "up"
            for server in self.servers
            if server.process is not None and server.process.poll() is None
        )

    def _replicas_seen(self) -> list[int]:
        seen = []
        for number in range(len(self.sentinels)):
            try:
                seen.append(len(self.sentinel(number).sentinel_slaves(self.master)))
            except redis_py.RedisError:
                pass
        return [count for count in seen if count]

    def failover(self, until_demoted: bool = True) -> int:
        """SENTINEL FAILOVER, as an operator would; returns the new primary's port once every
        Sentinel names it and it answers as a primary, and (`until_demoted`) the old primary
        serves as a replica."""
        old = self.primary_port()
        self.sentinel().sentinel_failover(self.master)
        return self._wait_for_new_primary(old, until_demoted)

    def kill_primary(self) -> int:
        """kill -9 of the primary; returns the new primary's port once elected."""
        old = self.primary()
        old.kill()
        return self._wait_for_new_primary(old.port)

    def _wait_for_new_primary(self, old: int, until_demoted: bool = True) -> int:
        def moved() -> bool:
            ports = set()
            for number in range(len(self.sentinels)):
                try:
                    ports.add(
                        int(self.sentinel(number).sentinel_get_master_addr_by_name(self.master)[1])
                    )
                except redis_py.RedisError:
                    return False
            if ports == {old} or len(ports) != 1:
                return False
            (new,) = ports
            if redis_py.Redis(port=new, socket_timeout=2).role()[0] != b"master":
                return False
            # A primary that is still alive (SENTINEL FAILOVER) goes on taking writes until the
            # Sentinels turn it into a replica, some seconds later; what it takes meanwhile is
            # lost when it resyncs. Done once it serves as a replica.
            survivor = next(server for server in self.servers if server.port == old)
            if until_demoted and survivor.process is not None and survivor.process.poll() is None:
                return survivor.client().role()[0] == b"slave"
            return True

        self.wait_for(moved, "the Sentinels to name a new primary")
        return self.primary_port()

    @staticmethod
    def wait_for(check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis_py.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait()
        for server in self.servers:
            server.stop()
