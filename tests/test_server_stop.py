"""DaphneServer.stop on a server whose event loop is blocked: the log it leaves says where."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DaphneServer

# A process that handles SIGTERM, as daphne's reactor does, but whose main thread never gets
# back to act on it: it waits for a lock that nothing will release.
STUCK = """
import signal, threading
signal.signal(signal.SIGTERM, lambda *args: print("SIGTERM seen", flush=True))
held = threading.Lock()
held.acquire()
print("blocked", flush=True)
held.acquire()
"""


def test_a_server_that_does_not_stop_leaves_the_stacks_of_its_threads_in_its_log(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "stuck.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", STUCK],
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # as start_daphne sets it
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = DaphneServer(port=0, process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while "blocked" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)

    with pytest.warns(UserWarning, match="did not stop on SIGTERM"):
        server.stop(timeout=1)

    assert process.poll() is not None
    log = server.log()
    assert "SIGTERM seen" in log
    # faulthandler's dump: the main thread, waiting on its lock at line 7 of the program.
    assert 'File "<string>", line 7 in <module>' in log
