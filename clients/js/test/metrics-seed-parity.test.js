// The seed's WebSocketMetricsCollector (websocket-integration-guide.md, "Performance
// Monitoring", "Connection Metrics"), copied with the types stripped, and ours, fed the same
// calls: where the seed's code is right, ours gives the same figures. Where it is wrong (latency
// on some sends only, a second drop, cleaning up a dropped connection, establishing a known id
// again) metrics.test.js says what ours does instead.
//
// Edits to the seed's code, each marked "EDIT" at its place:
// 1. TypeScript types, `private`, the interfaces ConnectionMetrics and GlobalMetrics removed.
// 2. `Date.now()` is a clock passed to the constructor, so both collectors read the same time.
import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { WebSocketMetricsCollector } from "../metrics.js";

// ---- the seed's class ------------------------------------------------------------------------

class SeedWebSocketMetricsCollector {
  // EDIT 1: `private metrics: Map<string, ConnectionMetrics> = new Map();` and
  // `private globalMetrics: GlobalMetrics;` became assignments in the constructor.
  // EDIT 2: the clock comes in through the constructor.
  constructor(Date) {
    this.Date = Date;
    this.metrics = new Map();
    this.globalMetrics = {
      totalConnections: 0,
      activeConnections: 0,
      totalMessagesSent: 0,
      totalMessagesReceived: 0,
      totalErrors: 0,
      averageLatency: 0,
      uptime: this.Date.now(),
    };
  }

  recordConnectionEstablished(connectionId, userId, connectionType) {
    const metrics = {
      connectionId,
      userId,
      connectionType,
      connectedAt: this.Date.now(),
      lastActivity: this.Date.now(),
      messagesSent: 0,
      messagesReceived: 0,
      bytesSent: 0,
      bytesReceived: 0,
      errors: 0,
      reconnectAttempts: 0,
      averageLatency: 0,
      peakLatency: 0,
      connectionDrops: 0,
    };

    this.metrics.set(connectionId, metrics);
    this.globalMetrics.totalConnections++;
    this.globalMetrics.activeConnections++;
  }

  recordMessageSent(connectionId, messageSize, latency) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.messagesSent++;
      metrics.bytesSent += messageSize;
      metrics.lastActivity = this.Date.now();

      if (latency !== undefined) {
        this.updateLatencyMetrics(metrics, latency);
      }
    }

    this.globalMetrics.totalMessagesSent++;
  }

  recordMessageReceived(connectionId, messageSize) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.messagesReceived++;
      metrics.bytesReceived += messageSize;
      metrics.lastActivity = this.Date.now();
    }

    this.globalMetrics.totalMessagesReceived++;
  }

  recordError(connectionId, error) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.errors++;
    }

    this.globalMetrics.totalErrors++;
  }

  recordConnectionDropped(connectionId) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.connectionDrops++;
      this.globalMetrics.activeConnections--;
    }
  }

  updateLatencyMetrics(metrics, latency) {
    // Update rolling average
    const totalMessages = metrics.messagesSent;
    metrics.averageLatency =
      (metrics.averageLatency * (totalMessages - 1) + latency) / totalMessages;
    metrics.peakLatency = Math.max(metrics.peakLatency, latency);
  }

  getConnectionMetrics(connectionId) {
    return this.metrics.get(connectionId);
  }

  getGlobalMetrics() {
    return { ...this.globalMetrics };
  }

  getConnectionsByType() {
    const typeCounts = new Map();

    for (const metrics of this.metrics.values()) {
      const count = typeCounts.get(metrics.connectionType) || 0;
      typeCounts.set(metrics.connectionType, count + 1);
    }

    return typeCounts;
  }

  cleanupInactiveConnections(maxIdleTime = 3600000) {
    const now = this.Date.now();
    const toRemove = [];

    for (const [connectionId, metrics] of this.metrics.entries()) {
      if (now - metrics.lastActivity > maxIdleTime) {
        toRemove.push(connectionId);
      }
    }

    for (const connectionId of toRemove) {
      this.metrics.delete(connectionId);
      this.globalMetrics.activeConnections--;
    }
  }
}

// ---- the same calls to both --------------------------------------------------------------------

function pair() {
  const clock = { time: 1_700_000_000_000 };
  const seed = new SeedWebSocketMetricsCollector({ now: () => clock.time });
  const ours = new WebSocketMetricsCollector({ now: () => clock.time });
  const both = (method, ...args) => {
    seed[method](...args);
    ours[method](...args);
  };
  const ids = () => [...new Set([...seed.metrics.keys(), ...ours.metrics.keys()])];
  const agree = ({ globalExcept = [] } = {}) => {
    for (const id of ids()) assert.deepEqual(ours.getConnectionMetrics(id), seed.getConnectionMetrics(id), id);
    const strip = (global) => Object.fromEntries(Object.entries(global).filter(([key]) => !globalExcept.includes(key)));
    assert.deepEqual(strip(ours.getGlobalMetrics()), strip(seed.getGlobalMetrics()));
    assert.deepEqual(ours.getConnectionsByType(), seed.getConnectionsByType());
  };
  return { clock, seed, ours, both, agree };
}

describe("WebSocketMetricsCollector gives the seed's figures where the seed is right", () => {
  it("connections established, messages and bytes each way, by type", () => {
    const { clock, both, agree } = pair();
    both("recordConnectionEstablished", "c1", "u1", "trip_collaboration");
    clock.time += 10;
    both("recordConnectionEstablished", "c2", "u2", "chat");
    both("recordConnectionEstablished", "c3", "u1", "chat");
    for (const [id, size] of [["c1", 120], ["c2", 45], ["c1", 3000], ["c3", 1]]) {
      clock.time += 5;
      both("recordMessageSent", id, size);
      both("recordMessageReceived", id, size * 2);
    }
    agree();
  });

  it("latency when every send carries one: the same average and peak", () => {
    const { both, agree } = pair();
    both("recordConnectionEstablished", "c1", "u1", "chat");
    for (const latency of [12, 40, 7.5, 33.25, 0.5]) both("recordMessageSent", "c1", 100, latency);
    // The seed never sets the global average; ours is the average of the samples.
    agree({ globalExcept: ["averageLatency"] });
  });

  it("errors and messages of unknown connections count in the global totals", () => {
    const { both, agree } = pair();
    both("recordConnectionEstablished", "c1", "u1", "notifications");
    both("recordError", "c1", new Error("one"));
    both("recordError", "nobody", { code: "X" });
    both("recordMessageSent", "nobody", 10);
    both("recordMessageReceived", "nobody", 10);
    agree();
  });

  it("one drop of each connection, and one of an unknown id", () => {
    const { both, agree } = pair();
    both("recordConnectionEstablished", "c1", "u1", "chat");
    both("recordConnectionEstablished", "c2", "u1", "chat");
    both("recordConnectionDropped", "c1");
    both("recordConnectionDropped", "nobody");
    agree();
  });

  it("cleaning up connections idle too long", () => {
    const { clock, both, agree } = pair();
    both("recordConnectionEstablished", "c1", "u1", "chat");
    both("recordConnectionEstablished", "c2", "u1", "agent_status");
    clock.time += 1000;
    both("recordMessageSent", "c2", 10);
    clock.time += 3_600_000;
    both("cleanupInactiveConnections");
    agree();
    clock.time += 500;
    both("cleanupInactiveConnections", 100);
    agree();
  });
});
