#!/bin/sh
# Unit tests of the TripSage Realtime JS client: Node's built-in runner, no npm packages.
# The live integration test (test/integration/) is not among them: `make test` runs it against a
# daphne of its own (tests/browser/test_js_client.py). By hand, against a running server
# (it needs `node --experimental-websocket` on Node 20):
#   TRIPSAGE_WS_URL=ws://127.0.0.1:8765 TRIPSAGE_TOKEN=... TRIPSAGE_TRIP_ID=1 \
#     node --experimental-websocket --test --test-concurrency=1 clients/js/test/integration/
set -eu
cd "$(dirname "$0")"
exec node --test test/*.test.js "$@"
