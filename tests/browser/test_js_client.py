"""The browser client's integration test (clients/js/test/integration) in Node against daphne."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import factories
from tests.wsclient import FrameCheck

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def test_the_js_client_against_a_live_server(daphne_factory, server_frames: FrameCheck, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("The client's integration test needs Node.js 20 or newer.", pytrace=False)
    server = daphne_factory("js-client", REALTIME_ALLOWED_ORIGINS="*")
    alice, _, _, trip = factories.make_crew()
    frames = tmp_path / "frames.jsonl"
    result = subprocess.run(
        [
            node,
            "--experimental-websocket",
            # Records every frame the client receives, checked below against the schemas.
            "--import=./tests/browser/record_frames.mjs",
            "--test",
            # One file at a time: each edits the same trip, and live.test.mjs expects to see
            # only its own events between an update and its resume.
            "--test-concurrency=1",
            "clients/js/test/integration/",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "TRIPSAGE_WS_URL": server.ws_url,
            "TRIPSAGE_TOKEN": factories.access_token(alice),
            "TRIPSAGE_TRIP_ID": str(trip.pk),
            "TRIPSAGE_FRAME_LOG": str(frames),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# skipped 0" in result.stdout and "# fail 0" in result.stdout, result.stdout
    # Every frame the server wrote to the client fits its schema (the server_frames fixture
    # fails the test at teardown for any that does not).
    received = [json.loads(line) for line in frames.read_text().splitlines()]
    assert len(received) > 10, "the client received too few frames to have been recorded"
    for frame in received:
        try:
            server_frames(frame["data"], frame["url"])
        except AssertionError:
            pass  # kept by the fixture, reported with every other one at teardown
