"""Runs the JS client's live Node tests (clients/js/test/live-env.mjs) against a daphne."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import factories

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from tests.conftest import DaphneServer
    from tests.wsclient import FrameCheck

ROOT = Path(__file__).resolve().parents[1]
# Preloaded into every run: appends each text frame a WebSocket receives to TRIPSAGE_FRAME_LOG.
RECORD_FRAMES = "./tests/browser/record_frames.mjs"
SUMMARY = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class NodeRun:
    """What a run printed, its summary counts (`pass`, `skipped`, …) and every frame the
    clients received ({"url": ..., "data": ...}, in order)."""

    stdout: str
    counts: dict[str, int]
    frames: list[dict[str, str]]


def run_live_node_tests(
    *paths: str,
    server: DaphneServer,
    user: AbstractBaseUser,
    trip_id: int,
    frame_check: FrameCheck,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    one_file_at_a_time: bool = False,
    timeout: float = 120,
) -> NodeRun:
    """Run the Node test files or folders `paths` (from the repository's root) against `server`
    as `user` on trip `trip_id`, with `env` added; fail unless every test ran and passed (none
    failed, cancelled or skipped: a live test skips itself when its variables are missing). Each
    frame the clients received goes through `frame_check` (the `server_frames` fixture, which
    fails the test at teardown for any that fits no schema)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            f"The JS client's live tests ({', '.join(paths)}) need Node.js 20 or newer "
            "(Debian: apt-get install nodejs).",
            pytrace=False,
        )
    log = tmp_path / "frames.jsonl"
    command = [node, "--experimental-websocket", f"--import={RECORD_FRAMES}", "--test"]
    if one_file_at_a_time:
        command.append("--test-concurrency=1")
    result = subprocess.run(
        [*command, *paths],
        cwd=ROOT,
        env={
            **os.environ,
            "TRIPSAGE_WS_URL": server.ws_url,
            "TRIPSAGE_HTTP_URL": server.http_url,
            "TRIPSAGE_TOKEN": factories.access_token(user),
            "TRIPSAGE_TRIP_ID": str(trip_id),
            **(env or {}),
            "TRIPSAGE_FRAME_LOG": str(log),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {name: int(number) for name, number in SUMMARY.findall(result.stdout)}
    assert counts.get("pass", 0) > 0, result.stdout
    for none in ("fail", "cancelled", "skipped"):
        assert counts.get(none) == 0, result.stdout
    received = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert received, "the clients received no frame, or record_frames.mjs recorded none"
    for frame in received:
        # Kept by the fixture and reported with every other one at teardown.
        with contextlib.suppress(AssertionError):
            frame_check(frame["data"], frame["url"])
    return NodeRun(stdout=result.stdout, counts=counts, frames=received)
