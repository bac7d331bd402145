"""The JS client's WebSocketMetricsCollector against the server's figures for the same socket
(clients/js/test/live-metrics), in Node against a real daphne."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.conftest import DaphneServer
from tests.jsnode import run_live_node_tests
from tests.wsclient import FrameCheck

pytestmark = pytest.mark.django_db(transaction=True)

# Heartbeat pings every second (the client pings every second too), metrics rows rewritten
# every 0.1 s: the server's figures are never more than a heartbeat behind the socket.
TIMINGS = {
    "REALTIME_HEARTBEAT_SECONDS": "1",
    "METRICS_FLUSH_SECONDS": "0.1",
    "METRICS_LIVE_REFRESH_SECONDS": "0",
}


def test_the_js_collector_agrees_with_the_servers_figures(
    daphne_factory: Callable[..., DaphneServer], server_frames: FrameCheck, tmp_path: Path
) -> None:
    server = daphne_factory("js-metrics", REALTIME_ALLOWED_ORIGINS="*", **TIMINGS)
    alice, _, _, trip = factories.make_crew()
    staff = factories.make_user("ops", is_staff=True)
    run = run_live_node_tests(
        "clients/js/test/live-metrics/",
        server=server,
        user=alice,
        trip_id=trip.pk,
        frame_check=server_frames,
        tmp_path=tmp_path,
        env={"TRIPSAGE_STAFF_TOKEN": factories.access_token(staff)},
    )
    assert run.counts["pass"] == 1, run.stdout
