"""`make cluster` (python -m deploy.cluster): one command prints the one URL that answers, and
Ctrl-C or SIGTERM stops every process it started, leaving none behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _database_url
from tests.deploy.conftest import CLUSTER_ENV

ROOT = Path(__file__).resolve().parents[2]
# The command runs on the test database, which pytest-django sets up only for such tests.
pytestmark = pytest.mark.django_db(transaction=True)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (Linux's /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture
def database_url(django_db_setup: None, django_db_blocker: Any) -> str:
    with django_db_blocker.unblock():
        return _database_url()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_the_command_prints_a_url_that_answers_and_stopping_it_leaves_no_process(
    database_url: str, how: str
):
    command = [sys.executable, "-m", "deploy.cluster", "--processes", "2", "--port", "0",
               "--settings", "tripsage.settings.test", "--no-seed",
               "--down-after-ms", "1000", "--failover-timeout-ms", "3000"]  # fmt: skip
    env = {**os.environ, **CLUSTER_ENV, "DATABASE_URL": database_url}
    # Its own session, as a terminal's foreground job: Ctrl-C reaches the whole group.
    cluster = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    output: list[str] = []
    url_seen = threading.Event()

    def read() -> None:
        assert cluster.stdout is not None
        for line in cluster.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                url_seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(600):  # a minute at most, unless the command ends first
            if url_seen.wait(0.1) or cluster.poll() is not None:
                break
        assert url_seen.is_set(), "".join(output)
        url = re.search(r"TripSage Realtime: (http://\S+)/ ", "".join(output))
        assert url, "".join(output)
        with urllib.request.urlopen(f"{url[1]}/healthz", timeout=10) as response:
            assert response.status == 200
        started = descendants(cluster.pid)
        names = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in started}
        assert any(b"nginx" in name for name in names), names
        assert len(started) >= 2 + 2 + 3 + 1  # daphnes, Redis + replica, Sentinels, nginx

        if how == "ctrl-c":
            os.killpg(cluster.pid, signal.SIGINT)
        else:
            cluster.send_signal(signal.SIGTERM)
        assert cluster.wait(timeout=60) == 0, "".join(output)
        reader.join(timeout=10)
        assert "Stopped." in "".join(output)
        assert [pid for pid in started if running(pid)] == []
    finally:
        # Whatever failed: nothing of this test's outlives it (its session's group).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
