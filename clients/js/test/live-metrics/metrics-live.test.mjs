// The client's WebSocketMetricsCollector against the server's figures for the same socket
// (GET /api/metrics/connections/<connection_id>/), live. Run by tests/browser/test_js_metrics.py,
// which starts a daphne whose heartbeat pings every second and whose metrics rows are rewritten
// every 0.1 s, and sets TRIPSAGE_WS_URL, TRIPSAGE_HTTP_URL, TRIPSAGE_TOKEN (a trip member),
// TRIPSAGE_STAFF_TOKEN and TRIPSAGE_TRIP_ID. By hand, against such a server:
//   node --experimental-websocket --test clients/js/test/live-metrics/
import { test } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection } from "../../websocket-connection.js";
import { WebSocketMetricsCollector } from "../../metrics.js";
import { httpUrl, next, skipWithout, token, tripUrl } from "../live-env.mjs";

const staffToken = process.env.TRIPSAGE_STAFF_TOKEN;
const skip = skipWithout("TRIPSAGE_HTTP_URL", "TRIPSAGE_STAFF_TOKEN");

const TEXT = "Grüße aus Zürich ✈ 東京 🧳"; // 1 to 4 UTF-8 bytes a character
// What a heartbeat in flight can change between the two reads: a ping and its pong each way.
const HEARTBEAT_FRAMES = 2;
const HEARTBEAT_BYTES = 400;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function serverFigures(connectionId) {
  const response = await fetch(httpUrl(`/api/metrics/connections/${connectionId}/`), {
    headers: { Authorization: `Bearer ${staffToken}`, Accept: "application/json" },
  });
  if (response.status === 404) return null; // not flushed yet
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body);
}

/** The client's and the server's figures for one socket, from each end: what one sent, the
 * other received. */
function differences(client, server) {
  return {
    clientSent: client.messagesSent - server.messagesReceived,
    clientReceived: client.messagesReceived - server.messagesSent,
    bytesClientSent: client.bytesSent - server.bytesReceived,
    bytesClientReceived: client.bytesReceived - server.bytesSent,
    errors: client.errors - server.errors,
  };
}

/**
 * Read both sides until they agree exactly (a moment with no heartbeat in flight, the server's
 * row just rewritten); every read on the way must agree within a heartbeat in flight. Returns
 * the last pair read. `until` adds a condition of its own (latency on both sides).
 */
async function agreement(collector, connectionId, { until = () => true, exact = true } = {}) {
  const deadline = Date.now() + 20000;
  let last = null;
  for (;;) {
    const server = await serverFigures(connectionId);
    const client = collector.getConnectionMetrics(connectionId);
    if (server !== null) {
      const diff = differences(client, server);
      last = { client, server, diff };
      assert.ok(Math.abs(diff.clientSent) <= HEARTBEAT_FRAMES && Math.abs(diff.clientReceived) <= HEARTBEAT_FRAMES, JSON.stringify(last));
      assert.ok(Math.abs(diff.bytesClientSent) <= HEARTBEAT_BYTES && Math.abs(diff.bytesClientReceived) <= HEARTBEAT_BYTES, JSON.stringify(last));
      assert.equal(diff.errors, 0, JSON.stringify(last));
      const same = Object.values(diff).every((value) => value === 0);
      if ((same || !exact) && until(client, server)) return last;
    }
    assert.ok(Date.now() < deadline, `the client's and the server's figures never agreed: ${JSON.stringify(last)}`);
    await sleep(25);
  }
}

test("live: the collector's figures are the server's for the same socket", { skip, timeout: 90000 }, async () => {
  const url = tripUrl();
  const collector = new WebSocketMetricsCollector();
  const connection = new WebSocketConnection({ url, token, reconnectAttempts: 2, heartbeatInterval: 1000 });
  collector.track(connection);
  try {
    const snapshot = next(connection, (m) => m.type === "trip.snapshot");
    await connection.connect();
    const established = await connection.whenEstablished();
    const first = established.connection_id;
    await snapshot;

    const echoed = next(connection, (m) => m.request_id === "echo-1");
    connection.send({ type: "echo", id: "echo-1", data: TEXT });
    assert.equal((await echoed).data, TEXT);
    const refused = next(connection, (m) => m.type === "error" && m.request_id === "bad-1");
    connection.send({ type: "no.such.type", id: "bad-1" });
    assert.equal((await refused).error.code, "INVALID_MESSAGE_FORMAT");

    // Heartbeats both ways: each side's round trips, and every ping and pong counted by both.
    const { client, server } = await agreement(collector, first, {
      until: (c, s) => c.peakLatency > 0 && s.averageLatency !== null,
    });
    assert.ok(client.averageLatency > 0 && client.averageLatency <= client.peakLatency);
    assert.ok(server.averageLatency > 0 && server.averageLatency <= server.peakLatency);
    assert.equal(client.errors, 1);
    assert.equal(client.userId, server.userId);
    assert.equal(client.connectionType, server.connectionType);
    assert.equal(server.reconnectAttempts, 0);

    // A new socket: its own record on its own connection_id, a reconnect on both sides (the
    // client counts the attempt, the server sees the resume).
    const reestablished = next(connection, (m) => m.type === "connection.established");
    const resumed = next(connection, (m) => m.type === "resume.complete" || m.type === "resync.required");
    connection.reconnect();
    const second = (await reestablished).connection_id;
    await resumed;
    assert.notEqual(second, first);
    const again = await agreement(collector, second, { until: (c, s) => s.reconnectAttempts === 1 });
    assert.equal(again.client.reconnectAttempts, 1);
    assert.equal(again.client.connectionDrops, 0);
    // The first socket is over on both sides; what was in flight as it closed may differ.
    const ended = await agreement(collector, first, { exact: false, until: (c, s) => s.open === false });
    assert.equal(ended.server.endReason, "client_closed");
    assert.equal(collector.getConnectionMetrics(first).connectionDrops, 0); // replaced on purpose
    assert.equal(collector.getGlobalMetrics().activeConnections, 1);
  } finally {
    connection.disconnect();
  }
});
