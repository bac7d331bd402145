"""Shared fixtures: real daphne processes on loopback, sharing the test database and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import WebsocketCommunicator
from django.core.management.commands import flush
from django.db import connection, connections
from django.db.backends.signals import connection_created
from websockets.asyncio.client import ClientConnection

from events.aio import database_pool
from tests.dbflush import retrying_deadlocks
from tests.wsclient import FrameCheck, checked_recv, frame_check

ROOT = Path(__file__).resolve().parent.parent


# Between transactional tests, a live server's last write may deadlock the flush (tests/dbflush.py).
flush.Command.handle = retrying_deadlocks(flush.Command.handle)


def require_redis_url() -> str:
    """Tests that need Redis fail loudly without it; they never skip."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail(
            "REDIS_URL is not set: run the suite with `make test`, which finds or starts Redis.",
            pytrace=False,
        )
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += f":{quote(db['PASSWORD'], safe='')}"
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class DaphneServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this process's Prometheus registry (`/metrics`): the first called `name`
        whose labels include `labels`; 0.0 when there is none yet. Blocking: from async tests,
        call it through asyncio.to_thread."""
        text = urllib.request.urlopen(f"{self.http_url}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            sample_name, _, label_text = sample.partition("{")
            if line.startswith("#") or sample_name != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
            if all(found.get(key) == wanted for key, wanted in labels.items()):
                return float(value)
        return 0.0

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds. A server still running then has a
        blocked event loop (its SIGTERM handler runs, but the reactor never gets to stop): it
        first gets SIGABRT, on which faulthandler (PYTHONFAULTHANDLER, `start_daphne`) writes
        every thread's stack to its log, so that the log says where it was stuck."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                warnings.warn(
                    f"server on port {self.port} did not stop on SIGTERM within {timeout} s: "
                    f"the stacks of its threads are at the end of {self.log_path}",
                    stacklevel=2,
                )


LIFTED_RATE_LIMITS = ",".join(
    f"{kind}=1000000/1000000"
    for kind in ("trip_collaboration", "chat", "agent_status", "notifications")
)


def start_daphne(tmp_dir: Path, name: str, *args: str, **overrides: str) -> DaphneServer:
    """A real daphne process running the project's ASGI app against the test database; `args`
    are more daphne options (another endpoint), `overrides` its environment."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tripsage.settings.test",
        DATABASE_URL=_database_url(),
        REDIS_URL=require_redis_url(),
        PYTHONUNBUFFERED="1",
        # A server that will not stop is sent SIGABRT, and writes its threads' stacks to its
        # log (DaphneServer.stop).
        PYTHONFAULTHANDLER="1",
        # Every test connects from 127.0.0.1 and test users' ids repeat between tests: limits
        # are lifted unless a test sets its own (tests/realtime/test_throttling_live.py). REST's
        # too: every process counts into one per-address budget in Redis, and the REST fuzz
        # test's thousand-odd requests would have the next minute's sign-ins refused.
        REALTIME_CONNECTS_PER_MINUTE_PER_IP="1000000",
        REALTIME_RATE_LIMITS=LIFTED_RATE_LIMITS,
        REST_RATE_USER="1000000/min",
        REST_RATE_IP="1000000/min",
    )
    env.update(overrides)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests' process only
    log_path = tmp_dir / f"daphne-{name}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                *args,
                "tripsage.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = DaphneServer(port=port, process=process, log_path=log_path, env=overrides)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"daphne {name} exited at start-up:\n{server.log()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    pytest.fail(f"daphne {name} did not listen within 30 s:\n{server.log()}", pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread
    from its first test on, which the browser tests' database access must be allowed beside
    (tests/browser/conftest.py); no other test runs after that."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))


_receive_output = WebsocketCommunicator.receive_output


async def _checked_receive_output(self: WebsocketCommunicator, timeout: float = 1) -> Any:
    """WebsocketCommunicator.receive_output (under receive_from and receive_json_from), with
    `frame_check` on every text frame the application sends."""
    output = await _receive_output(self, timeout)
    if output.get("type") == "websocket.send" and output.get("text") is not None:
        frame_check(output["text"], self.scope.get("path"))
    return output


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def server_frames(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FrameCheck]:
    """Every frame a test receives from a server fits protocol.server's schemas, or the test
    fails: at once where it was received, and at teardown for a frame received where nobody
    reads the exception (a reader task, a thread, a browser page)."""
    frame_check.take()
    monkeypatch.setattr(ClientConnection, "recv", checked_recv)
    monkeypatch.setattr(WebsocketCommunicator, "receive_output", _checked_receive_output)
    yield frame_check
    failures = frame_check.take()
    if failures and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail(
            f"{len(failures)} server frame(s) fit no schema in protocol.server:\n"
            + "\n".join(failures),
            pytrace=False,
        )


def _lock_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    """No test waits a minute for a lock: a wait that long is a hang (the flush between tests
    behind a transaction something left open, as stopped a CI run for 90 minutes), and an error
    naming the lock says more than a run that ends at its time limit (pytest-timeout's signal
    does not end a wait in libpq). This process's connections only: the servers the tests start
    may sit behind PgBouncer, which refuses startup options."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '60s'")


connection_created.connect(_lock_timeout, dispatch_uid="tests-lock-timeout")


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_async_tests(django_db_setup: None) -> Iterator[None]:
    """ORM calls from async tests run on asgiref's one sync thread, whose connections the test
    database teardown cannot see: close them first, or PostgreSQL refuses to drop the database."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
    database_pool.close_connections()


@pytest.fixture
async def database_thread() -> Any:
    """In this process, a consumer's database calls (events.aio.db) run on one thread, whose
    connection is closed afterwards, or it would keep the test database from being dropped."""
    pool = ThreadPoolExecutor(max_workers=1)
    previous = database_pool.replace(pool)
    yield
    await asyncio.get_running_loop().run_in_executor(pool, connections.close_all)
    database_pool.replace(previous)
    pool.shutdown()


@contextlib.contextmanager
def daphne_servers(django_db_blocker: Any, tmp_dir: Path) -> Iterator[Callable[..., DaphneServer]]:
    """A factory of daphne processes, every one of them stopped when the block ends."""
    started: list[DaphneServer] = []

    def factory(name: str, *args: str, **overrides: str) -> DaphneServer:
        with django_db_blocker.unblock():
            server = start_daphne(tmp_dir, name, *args, **overrides)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def _daphne_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("daphne")


# Three lifetimes, so that a process lives no longer than what uses it: a test's own servers stop
# at its end, a module's at the module's. Each idle process holds database connections (up to
# DATABASE_THREADS + HTTP_MAX_CONCURRENT_REQUESTS) and wakes up for its timers: when every
# server lived until the end of the session, fifty of them took PostgreSQL past max_connections
# ("too many clients", tests/tripsage/test_database_budget.py) and slowed the tests after them.
@pytest.fixture
def daphne_factory(
    django_db_setup: None, django_db_blocker: Any, _daphne_dir: Path
) -> Iterator[Callable[..., DaphneServer]]:
    """Servers for this test only."""
    with daphne_servers(django_db_blocker, _daphne_dir) as factory:
        yield factory


@pytest.fixture(scope="module")
def module_daphne_factory(
    django_db_setup: None, django_db_blocker: Any, _daphne_dir: Path
) -> Iterator[Callable[..., DaphneServer]]:
    """Servers for a module-scoped fixture: stopped after the module's last test."""
    with daphne_servers(django_db_blocker, _daphne_dir) as factory:
        yield factory


@pytest.fixture(scope="session")
def session_daphne_factory(
    django_db_setup: None, django_db_blocker: Any, _daphne_dir: Path
) -> Iterator[Callable[..., DaphneServer]]:
    """Servers that many modules share (`server`, `fast_server`, `pair`, the browser's `web`)."""
    with daphne_servers(django_db_blocker, _daphne_dir) as factory:
        yield factory


@pytest.fixture(scope="session")
def server(session_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """The default server: production-like timings, Redis channel layer."""
    return session_daphne_factory("default")


@pytest.fixture(scope="session")
def fast_server(session_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """A second process with short timers, for auth timeout, heartbeat and token expiry."""
    return session_daphne_factory(
        "fast",
        REALTIME_AUTH_TIMEOUT_SECONDS="1",
        REALTIME_HEARTBEAT_SECONDS="0.5",
        REALTIME_HEARTBEAT_TIMEOUT_SECONDS="4",
        REALTIME_TOKEN_GRACE_SECONDS="1",
    )


@pytest.fixture
def live(transactional_db: None, server: DaphneServer) -> DaphneServer:
    """The default server, with test data committed so that it can see it."""
    return server


PRESENCE_TIMINGS = {
    "PRESENCE_TTL_SECONDS": "2",
    "PRESENCE_REFRESH_SECONDS": "0.5",
    "EDITING_TTL_SECONDS": "2",
}


@pytest.fixture(scope="session")
def pair(
    session_daphne_factory: Callable[..., DaphneServer],
) -> tuple[DaphneServer, DaphneServer]:
    """Two server processes sharing the database and Redis, with short presence timings."""
    return session_daphne_factory("pair-a", **PRESENCE_TIMINGS), session_daphne_factory(
        "pair-b", **PRESENCE_TIMINGS
    )
