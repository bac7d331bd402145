// The live tests' server and credentials (tests/browser/test_js_client.py sets them), and why a
// test is skipped without them. Not a test file of its own (node --test runs it: it has none).
export const { TRIPSAGE_WS_URL: base, TRIPSAGE_TOKEN: token, TRIPSAGE_TRIP_ID: tripId } = process.env;

export const skip = !(base && token && tripId)
  ? "set TRIPSAGE_WS_URL, TRIPSAGE_TOKEN and TRIPSAGE_TRIP_ID to run against a live server"
  : typeof globalThis.WebSocket !== "function"
    ? "no global WebSocket: run with node --experimental-websocket"
    : false;
