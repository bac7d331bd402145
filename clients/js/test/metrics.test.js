// WebSocketMetricsCollector: the seed's collector where the seed is wrong (seed-parity covers
// where it is right), and its feed from a WebSocketConnection, checked against what crossed the
// fake socket: every frame each way, its bytes in UTF-8 (Buffer.byteLength is the oracle).
import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { WebSocketMetricsCollector, frameByteLength, utf8ByteLength } from "../metrics.js";
import { WebSocketConnection } from "../websocket-connection.js";
import { fakeOptions } from "./helpers.js";

const bytes = (texts) => texts.reduce((sum, text) => sum + Buffer.byteLength(text, "utf8"), 0);

/** A collector on a manual wall clock and round-trip clock. */
function collectorWithClocks() {
  const time = { wall: 1_700_000_000_000, mono: 0 };
  const collector = new WebSocketMetricsCollector({ now: () => time.wall, clock: () => time.mono });
  return { collector, time };
}

/** A tracked connection on a fake socket. `wire()` is what crossed it, as the server saw it. */
function trackedConnection(extra = {}) {
  const { factory, clock, options } = fakeOptions(extra);
  const connection = new WebSocketConnection(options);
  const { collector, time } = collectorWithClocks();
  const untrack = collector.track(connection);
  const received = new Map(); // socket -> texts the client was sent
  const serverSends = (ws, message) => {
    const text = typeof message === "string" ? message : JSON.stringify(message);
    if (!received.has(ws)) received.set(ws, []);
    received.get(ws).push(text);
    ws.receive(text);
  };
  const wire = (ws = factory.last()) => {
    const sent = ws.send.mock.calls.map((call) => call.arguments[0]);
    const got = received.get(ws) ?? [];
    return { messagesSent: sent.length, bytesSent: bytes(sent), messagesReceived: got.length, bytesReceived: bytes(got) };
  };
  const counted = (record) => ({
    messagesSent: record.messagesSent,
    bytesSent: record.bytesSent,
    messagesReceived: record.messagesReceived,
    bytesReceived: record.bytesReceived,
  });
  /** Open the current (or a new) socket and establish it as the server does. */
  const establish = (connectionId, extra = {}) => {
    if (!connection.isConnected && connection.state !== "connecting" && connection.state !== "reconnecting") connection.connect();
    const ws = factory.last();
    ws.open();
    serverSends(ws, {
      type: "connection.established",
      id: `e-${connectionId}`,
      connection_id: connectionId,
      connection_type: "trip_collaboration",
      user: { id: 7, username: "alice" },
      heartbeat_interval: 30,
      ...extra,
    });
    return ws;
  };
  return { connection, collector, time, factory, clock, untrack, serverSends, wire, counted, establish };
}

describe("utf8ByteLength", () => {
  it("counts what UTF-8 carries: 1 to 4 bytes a code point, U+FFFD for a lone surrogate", () => {
    for (const text of ["", "plain", "Zürich", "✈ 東京", "🧳🧳", "a\ud800b", "\udc00", "x\ud83d"]) {
      assert.equal(utf8ByteLength(text), Buffer.byteLength(text, "utf8"), JSON.stringify(text));
      assert.equal(utf8ByteLength(text), new TextEncoder().encode(text).length);
    }
  });

  it("measures binary frames by their bytes", () => {
    assert.equal(frameByteLength(new ArrayBuffer(5)), 5);
    assert.equal(frameByteLength(new Uint8Array(3)), 3);
    assert.equal(frameByteLength(new Blob(["héllo"])), 6);
    assert.equal(frameByteLength("héllo"), 6);
  });
});

describe("WebSocketMetricsCollector where the seed's code is wrong", () => {
  it("averages latency over the samples, not over every message sent", () => {
    const { collector } = collectorWithClocks();
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.recordMessageSent("c1", 10);
    collector.recordMessageSent("c1", 10, 40);
    collector.recordMessageSent("c1", 10);
    collector.recordMessageSent("c1", 10, 20);
    const metrics = collector.getConnectionMetrics("c1");
    assert.equal(metrics.averageLatency, 30); // the seed: (20 + 20 * 3) / 4 = 20... from 40 / 2
    assert.equal(metrics.peakLatency, 40);
    assert.equal(collector.getGlobalMetrics().averageLatency, 30); // the seed's stays 0
  });

  it("never counts a connection inactive twice: a second drop, or cleaning up a dropped one", () => {
    const { collector, time } = collectorWithClocks();
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.recordConnectionEstablished("c2", "7", "chat");
    collector.recordConnectionDropped("c1");
    collector.recordConnectionDropped("c1");
    collector.recordConnectionDropped("unknown");
    assert.equal(collector.getGlobalMetrics().activeConnections, 1);
    assert.equal(collector.getConnectionMetrics("c1").connectionDrops, 2);
    time.wall += 3_600_001;
    collector.cleanupInactiveConnections();
    assert.equal(collector.getGlobalMetrics().activeConnections, 0); // the seed's: -1
    assert.equal(collector.getConnectionMetrics("c1"), undefined);
  });

  it("keeps a known connection's counters when it is established again after a drop", () => {
    const { collector } = collectorWithClocks();
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.recordMessageSent("c1", 100);
    collector.recordConnectionDropped("c1");
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.recordConnectionEstablished("c1", "7", "chat"); // already active: nothing more
    const metrics = collector.getConnectionMetrics("c1");
    assert.equal(metrics.messagesSent, 1);
    assert.equal(metrics.bytesSent, 100);
    assert.equal(metrics.reconnectAttempts, 1);
    assert.deepEqual(
      [collector.getGlobalMetrics().activeConnections, collector.getGlobalMetrics().totalConnections],
      [1, 2],
    );
  });

  it("gives out copies: a caller cannot change the counts", () => {
    const { collector } = collectorWithClocks();
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.getConnectionMetrics("c1").messagesSent = 99;
    assert.equal(collector.getConnectionMetrics("c1").messagesSent, 0);
  });

  it("ends a connection without a drop with recordConnectionClosed", () => {
    const { collector } = collectorWithClocks();
    collector.recordConnectionEstablished("c1", "7", "chat");
    collector.recordConnectionClosed("c1");
    collector.recordConnectionClosed("c1");
    assert.equal(collector.getGlobalMetrics().activeConnections, 0);
    assert.equal(collector.getConnectionMetrics("c1").connectionDrops, 0);
  });
});

describe("WebSocketMetricsCollector.track(connection)", () => {
  it("counts every frame each way on the server's connection_id, token and pings included", () => {
    const t = trackedConnection({ heartbeatInterval: 1000 });
    const ws = t.establish("c1");
    t.serverSends(ws, { type: "rate_limit_status", limit: 60, remaining: 59 });
    t.connection.send({ type: "chat.message", client_id: "m1", text: "Grüße aus Zürich ✈ 🧳" });
    t.serverSends(ws, { type: "ping", id: "p1" }); // answered with a pong: a frame sent
    t.clock.advance(1000); // the client's own ping
    t.serverSends(ws, { type: "pong", request_id: null });
    t.serverSends(ws, "not json"); // a frame all the same
    const record = t.collector.getConnectionMetrics("c1");
    assert.deepEqual(t.counted(record), t.wire(ws));
    assert.equal(record.messagesSent, 4); // token, chat.message, pong, ping
    assert.deepEqual([record.userId, record.connectionType], ["7", "trip_collaboration"]);
    assert.equal(t.collector.getGlobalMetrics().totalMessagesSent, 4);
    assert.equal(t.collector.getGlobalMetrics().totalMessagesReceived, record.messagesReceived);
  });

  it("measures latency as the round trip of the client's own heartbeat pings", () => {
    const t = trackedConnection({ heartbeatInterval: 1000 });
    const ws = t.establish("c1");
    t.serverSends(ws, { type: "ping", id: "p1" }); // the server's ping is the server's to time
    t.clock.advance(1000);
    t.time.mono += 12.5;
    t.serverSends(ws, { type: "pong", request_id: null });
    t.clock.advance(1000);
    t.time.mono += 1000;
    t.serverSends(ws, { type: "pong", request_id: "someone-else's" }); // no ping of ours
    t.time.mono += 7.5;
    t.serverSends(ws, { type: "pong", request_id: null });
    const record = t.collector.getConnectionMetrics("c1");
    assert.equal(record.peakLatency, 1007.5);
    assert.equal(record.averageLatency, (12.5 + 1007.5) / 2);
  });

  it("counts the server's error envelopes on the socket, and the client's own failures globally", () => {
    const t = trackedConnection({ maxQueueSize: 0 });
    const ws = t.establish("c1");
    t.serverSends(ws, { type: "error", request_id: "x", error: { code: "INVALID_MESSAGE_FORMAT", message: "no" } });
    ws.serverClose(1006);
    t.connection.send({ type: "echo" }); // queue full: the client's own error
    assert.equal(t.collector.getConnectionMetrics("c1").errors, 1);
    assert.equal(t.collector.getGlobalMetrics().totalErrors, 2);
    assert.equal(t.collector.getTrackedTotals(t.connection).errors, 1);
  });

  it("adds the frames before connection.established to its record, and an envelope refused then", () => {
    const t = trackedConnection();
    t.connection.connect();
    const ws = t.factory.last();
    ws.open();
    t.serverSends(ws, { type: "error", error: { code: "AUTHENTICATION_FAILED", message: "not yet" } });
    t.serverSends(ws, { type: "connection.established", connection_id: "c1", connection_type: "chat", user: { id: 7 } });
    const record = t.collector.getConnectionMetrics("c1");
    assert.deepEqual(t.counted(record), t.wire(ws));
    assert.equal(record.errors, 1);
  });

  it("counts a socket that never got established in the global totals only", () => {
    const t = trackedConnection();
    t.connection.connect();
    const ws = t.factory.last();
    ws.open();
    t.serverSends(ws, { type: "error", error: { code: "AUTHENTICATION_FAILED", message: "bad token" } });
    ws.serverClose(4001);
    const global = t.collector.getGlobalMetrics();
    assert.equal(t.collector.metrics.size, 0);
    assert.deepEqual(
      [global.totalConnections, global.totalMessagesSent, global.totalMessagesReceived, global.totalErrors],
      [0, 1, 1, 1], // the token; the envelope; the envelope (the attempt's failure is that error)
    );
  });

  it("gives each socket its own record: a drop on the old one, the attempts on the new one", () => {
    const t = trackedConnection({ reconnectAttempts: 5 });
    const first = t.establish("c1");
    first.serverClose(1006);
    t.clock.advance(60_000); // attempt 1
    t.factory.last().serverClose(1006); // refused before it opened
    t.clock.advance(60_000); // attempt 2
    const second = t.establish("c2");
    const [old, current] = [t.collector.getConnectionMetrics("c1"), t.collector.getConnectionMetrics("c2")];
    assert.deepEqual([old.connectionDrops, old.reconnectAttempts], [1, 0]);
    assert.deepEqual([current.connectionDrops, current.reconnectAttempts], [0, 2]);
    assert.deepEqual(t.counted(current), t.wire(second));
    assert.deepEqual(t.collector.getTrackedMetrics(t.connection), current);
    const totals = t.collector.getTrackedTotals(t.connection);
    assert.deepEqual([totals.sockets, totals.reconnectAttempts, totals.connectionDrops], [2, 2, 1]);
    assert.equal(t.collector.getGlobalMetrics().activeConnections, 1);
  });

  it("does not count disconnect() or a socket replaced by reconnect() as a drop", () => {
    const t = trackedConnection();
    t.establish("c1");
    t.connection.reconnect();
    t.establish("c2");
    t.connection.disconnect();
    const [first, second] = [t.collector.getConnectionMetrics("c1"), t.collector.getConnectionMetrics("c2")];
    assert.deepEqual([first.connectionDrops, second.connectionDrops], [0, 0]);
    assert.equal(second.reconnectAttempts, 1); // a later socket of the connection: a reconnect
    assert.equal(t.collector.getGlobalMetrics().activeConnections, 0);
  });

  it("counts nothing more once untracked, and counts an open socket from when it is tracked", () => {
    const t = trackedConnection();
    const ws = t.establish("c1");
    t.untrack();
    t.connection.send({ type: "echo" });
    assert.equal(t.collector.getConnectionMetrics("c1").messagesSent, 1); // the token only
    assert.equal(t.collector.getTrackedMetrics(t.connection), undefined);

    const later = new WebSocketMetricsCollector();
    later.track(t.connection);
    t.connection.send({ type: "echo" });
    t.serverSends(ws, { type: "ping", id: "p2" });
    const record = later.getConnectionMetrics("c1");
    assert.deepEqual([record.messagesSent, record.messagesReceived, record.userId], [2, 1, "7"]);
  });

  it("tracks a connection once however often track() is called", () => {
    const t = trackedConnection();
    assert.equal(t.collector.track(t.connection), t.untrack);
    t.establish("c1");
    assert.equal(t.collector.getConnectionMetrics("c1").messagesSent, 1);
  });
});
