"""The JS client's WebSocketMetricsCollector against the server's figures for the same socket
(clients/js/test/live-metrics), in Node against a real daphne."""

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

# Heartbeat pings every second (the client pings every second too), metrics rows rewritten
# every 0.1 s: the server's figures are never more than a heartbeat behind the socket.
TIMINGS = {
    "REALTIME_HEARTBEAT_SECONDS": "1",
    "METRICS_FLUSH_SECONDS": "0.1",
    "METRICS_LIVE_REFRESH_SECONDS": "0",
}


def test_the_js_collector_agrees_with_the_servers_figures(
    daphne_factory, server_frames: FrameCheck, tmp_path
):
    node = shutil.which("node")
    if node is None:
        pytest.fail("The client's live metrics test needs Node.js 20 or newer.", pytrace=False)
    server = daphne_factory("js-metrics", REALTIME_ALLOWED_ORIGINS="*", **TIMINGS)
    alice, _, _, trip = factories.make_crew()
    staff = factories.make_user("ops", is_staff=True)
    frames = tmp_path / "frames.jsonl"
    result = subprocess.run(
        [
            node,
            "--experimental-websocket",
            "--import=./tests/browser/record_frames.mjs",
            "--test",
            "clients/js/test/live-metrics/",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "TRIPSAGE_WS_URL": server.ws_url,
            "TRIPSAGE_HTTP_URL": server.http_url,
            "TRIPSAGE_TOKEN": factories.access_token(alice),
            "TRIPSAGE_STAFF_TOKEN": factories.access_token(staff),
            "TRIPSAGE_TRIP_ID": str(trip.pk),
            "TRIPSAGE_FRAME_LOG": str(frames),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 1" in result.stdout and "# skipped 0" in result.stdout, result.stdout
    for line in frames.read_text().splitlines():
        frame = json.loads(line)
        try:
            server_frames(frame["data"], frame["url"])
        except AssertionError:
            pass  # kept by the fixture, reported at teardown
