"""The seed's React hook and Vue composable as docs/client.md prints them, run in Node against a
daphne of their own (clients/js/test/docs/hooks-live.test.mjs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.conftest import DaphneServer
from tests.jsnode import run_live_node_tests
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
    server = daphne_factory("js-doc-hooks", REALTIME_ALLOWED_ORIGINS="*")
    alice = factories.make_user("alice")
    trips = [factories.make_trip(alice) for _ in range(CONNECTING_MOUNTS)]
    run = run_live_node_tests(
        HOOKS_TEST,
        server=server,
        user=alice,
        trip_id=trips[0].pk,
        frame_check=server_frames,
        tmp_path=tmp_path,
        env={
            "NODE_ENV": "test",  # React's act() and Vue's checks exist only outside production
            "TRIPSAGE_TRIP_IDS": ",".join(str(trip.pk) for trip in trips),
        },
        timeout=300,
    )
    assert any(json.loads(f["data"]).get("type") == "ack" for f in run.frames), "no ack recorded"
