"""The browser client's integration test (clients/js/test/integration) in Node against daphne."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def test_the_js_client_against_a_live_server(daphne_factory):
    node = shutil.which("node")
    if node is None:
        pytest.fail("The client's integration test needs Node.js 20 or newer.", pytrace=False)
    server = daphne_factory("js-client", REALTIME_ALLOWED_ORIGINS="*")
    alice, _, _, trip = factories.make_crew()
    result = subprocess.run(
        [node, "--experimental-websocket", "--test", "clients/js/test/integration/"],
        cwd=ROOT,
        env={
            **os.environ,
            "TRIPSAGE_WS_URL": server.ws_url,
            "TRIPSAGE_TOKEN": factories.access_token(alice),
            "TRIPSAGE_TRIP_ID": str(trip.pk),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# skipped 0" in result.stdout and "# fail 0" in result.stdout, result.stdout
