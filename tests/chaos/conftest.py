"""Fault tests: each test starts its own Redis on a free port (never the shared one, which other
tests and sessions use) and its own two daphne processes on it, sharing the test database.

`redis` is the test's Redis, which a test may freeze (SIGSTOP), kill and restart empty, or wipe;
`processes` are two daphne processes on it with short timers, so that what heals on a timer heals
within a test (docs/reliability.md gives the production timings)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.conftest import DaphneServer, daphne_servers
from tests.redis_servers import RedisServer

# The processes' timers. "short" (the suite): everything that heals on a timer heals within a
# test. "production" (`make chaos`): the defaults of tripsage/settings/base.py, so that what
# tests record (CHAOS_REPORT) is what users of a default deployment see (docs/reliability.md).
PROFILES = {
    "short": {
        "REALTIME_HEARTBEAT_SECONDS": "1",
        "REALTIME_HEARTBEAT_TIMEOUT_SECONDS": "30",
        "PRESENCE_TTL_SECONDS": "3",
        "PRESENCE_REFRESH_SECONDS": "0.5",
        "EDITING_TTL_SECONDS": "30",
        "REALTIME_CONNECTION_LEASE_SECONDS": "3",
        "REALTIME_STREAM_CHECK_SECONDS": "1",
        "REALTIME_REVOCATION_CHECK_SECONDS": "2",
        "METRICS_FLUSH_SECONDS": "0.5",
    },
    "production": {
        "REALTIME_HEARTBEAT_SECONDS": "30",
        "REALTIME_HEARTBEAT_TIMEOUT_SECONDS": "70",
        "PRESENCE_TTL_SECONDS": "30",
        "PRESENCE_REFRESH_SECONDS": "10",
        "EDITING_TTL_SECONDS": "30",
        "REALTIME_CONNECTION_LEASE_SECONDS": "60",
        "REALTIME_STREAM_CHECK_SECONDS": "5",
        "REALTIME_REVOCATION_CHECK_SECONDS": "30",
        "METRICS_FLUSH_SECONDS": "0.5",  # the admin lists a socket sooner; nothing heals by it
    },
}
CHAOS_TIMINGS = PROFILES[os.environ.get("CHAOS_PROFILE", "short")]


def timing(name: str) -> float:
    """One of the processes' timers, in seconds."""
    return float(CHAOS_TIMINGS[name])


# What the issue promises, from the timers: a socket converges within the heartbeat interval
# plus 5 s after Redis answers again.
CONVERGENCE_BOUND = timing("REALTIME_HEARTBEAT_SECONDS") + 5


def record(fault: str, what: str, seconds: float, bound: float) -> None:
    """With CHAOS_REPORT set (`make chaos`), append how long `what` took after `fault` to that
    file (JSON lines; bench/chaos_report.py makes the table of docs/reliability.md)."""
    path = os.environ.get("CHAOS_REPORT")
    if not path:
        return
    line = {"profile": os.environ.get("CHAOS_PROFILE", "short"), "fault": fault, "what": what,
            "seconds": round(seconds, 2), "bound": bound}  # fmt: skip
    with open(path, "a") as report:
        report.write(json.dumps(line) + "\n")


@pytest.fixture
def crew(transactional_db: None) -> Any:
    """The seed's roles: alice owns the trip, bob edits, carol views."""
    return factories.make_crew()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def start_process(
    redis: RedisServer,
    django_db_blocker: object,
    tmp_path: Path,
) -> Iterator[Callable[..., DaphneServer]]:
    """Start a daphne process on the test's Redis (stopped when the test ends)."""
    with daphne_servers(django_db_blocker, tmp_path) as factory:

        def start(name: str, **overrides: str) -> DaphneServer:
            return factory(name, **{**CHAOS_TIMINGS, "REDIS_URL": redis.url, **overrides})

        yield start


@pytest.fixture
def processes(
    transactional_db: None, start_process: Callable[..., DaphneServer]
) -> tuple[DaphneServer, DaphneServer]:
    """Two daphne processes on the test's Redis, sharing the test database."""
    return start_process("chaos-a"), start_process("chaos-b")


def tracebacks(server: DaphneServer) -> list[str]:
    """The tracebacks in a process's log (a fault test expects those it caused, no others)."""
    return [block for block in server.log().split("Traceback")[1:]]
