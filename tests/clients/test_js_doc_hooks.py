"""The seed's React hook and Vue composable as docs/client.md prints them, run in Node against a
daphne of their own (clients/js/test/docs/hooks-live.test.mjs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.clients.npm import ROOT
from tests.conftest import DaphneServer
from tests.wsclient import FrameCheck

pytestmark = pytest.mark.django_db(transaction=True)

HOOKS_TEST = "clients/js/test/docs/hooks-live.test.mjs"
# The test's mounts that connect: a trip each, so that no other socket's presence follows the
# snapshot a mount expects as its last message.
CONNECTING_MOUNTS = 4


def test_the_hooks_printed_in_the_client_docs_run_against_a_live_server(
    dev_dependencies: Path,
    daphne_factory: Callable[..., DaphneServer],
    server_frames: FrameCheck,
    tmp_path: Path,
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("The docs' hooks test needs Node.js 20 or newer.", pytrace=False)
    server = daphne_factory("js-doc-hooks", REALTIME_ALLOWED_ORIGINS="*")
    alice = factories.make_user("alice")
    trips = [factories.make_trip(alice) for _ in range(CONNECTING_MOUNTS)]
    frames = tmp_path / "frames.jsonl"
    result = subprocess.run(
        [
            node,
            "--experimental-websocket",
            # Records every frame the hooks receive, checked below against the schemas.
            "--import=./tests/browser/record_frames.mjs",
            "--test",
            HOOKS_TEST,
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "NODE_ENV": "test",  # React's act() and Vue's checks exist only outside production
            "TRIPSAGE_WS_URL": server.ws_url,
            "TRIPSAGE_TOKEN": factories.access_token(alice),
            "TRIPSAGE_TRIP_ID": str(trips[0].pk),
            "TRIPSAGE_TRIP_IDS": ",".join(str(trip.pk) for trip in trips),
            "TRIPSAGE_FRAME_LOG": str(frames),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for zero in ("# fail 0", "# cancelled 0", "# skipped 0"):
        assert zero in result.stdout, result.stdout
    received = [json.loads(line) for line in frames.read_text().splitlines()]
    assert any(json.loads(f["data"]).get("type") == "ack" for f in received), "no ack recorded"
    for frame in received:
        try:
            server_frames(frame["data"], frame["url"])
        except AssertionError:
            pass  # kept by the fixture, reported with every other one at teardown
