"""The browser client's integration test (clients/js/test/integration) in Node against daphne."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.conftest import DaphneServer
from tests.jsnode import run_live_node_tests
from tests.wsclient import FrameCheck

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_js_client_against_a_live_server(
    daphne_factory: Callable[..., DaphneServer], server_frames: FrameCheck, tmp_path: Path
) -> None:
    server = daphne_factory("js-client", REALTIME_ALLOWED_ORIGINS="*")
    alice, _, _, trip = factories.make_crew()
    run = run_live_node_tests(
        "clients/js/test/integration/",
        server=server,
        user=alice,
        trip_id=trip.pk,
        frame_check=server_frames,
        tmp_path=tmp_path,
        # One file at a time: each edits the same trip, and live.test.mjs expects to see only
        # its own events between an update and its resume.
        one_file_at_a_time=True,
    )
    assert len(run.frames) > 10, "the client received too few frames to have been recorded"
