// TripSage Realtime: the seed's WebSocketMetricsCollector ("Performance Monitoring", "Connection
// Metrics"), and the feed from a WebSocketConnection (docs/client.md, "Metrics").
// Plain ES module, no dependencies, no build step.

/** The UTF-8 bytes of a string, as a WebSocket text frame carries it (a lone surrogate is sent
 * as U+FFFD: 3 bytes). No allocation, unlike TextEncoder. */
export function utf8ByteLength(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4; // a surrogate pair: one code point past U+FFFF
        i++;
      } else {
        bytes += 3;
      }
    } else bytes += 3;
  }
  return bytes;
}

/** The bytes of a frame as a socket delivers it: text (UTF-8), ArrayBuffer, a typed array or
 * Buffer, or a Blob. */
export function frameByteLength(data) {
  if (typeof data === "string") return utf8ByteLength(data);
  if (data == null) return 0;
  if (typeof data.byteLength === "number") return data.byteLength;
  if (typeof data.size === "number") return data.size;
  return utf8ByteLength(String(data));
}

const monotonic =
  typeof globalThis.performance?.now === "function" ? () => globalThis.performance.now() : () => Date.now();

/** The client's own heartbeat, `{"type":"ping"}` (with an `id` if it ever carries one). */
function pingId(text) {
  if (typeof text !== "string" || !text.startsWith('{"type":"ping"')) return undefined;
  try {
    return JSON.parse(text).id ?? null;
  } catch {
    return undefined;
  }
}

/**
 * The seed's WebSocketMetricsCollector: one ConnectionMetrics record per connection id, and the
 * GlobalMetrics of all of them. The seed's methods keep the seed's names, arguments and meaning;
 * where the seed's code is wrong, this one differs (docs/client.md, "Metrics"):
 * - latency: the average is over the latency samples, not over every message sent;
 *   `globalMetrics.averageLatency` is the average of every sample (the seed never set it);
 * - `activeConnections` counts each record once: a second drop of a socket, or cleaning up a
 *   socket that dropped already, does not take it below the truth (the seed's went negative);
 * - `recordConnectionEstablished` on a known id keeps its counters (the seed reset them and
 *   counted the connection active twice); after a drop it is the same connection back: active
 *   again, one more reconnect attempt.
 * - `getConnectionMetrics` returns a copy, like `getGlobalMetrics`.
 * Added: `recordLatency`, `recordConnectionClosed` (an end that is no drop), and `track`, which
 * feeds the collector from a WebSocketConnection.
 *
 * Options: now (wall clock in ms, Date.now: connectedAt, lastActivity, uptime), clock
 * (monotonic ms for round trips, performance.now).
 */
export class WebSocketMetricsCollector {
  constructor(options = {}) {
    this._now = options.now ?? (() => Date.now());
    this._clock = options.clock ?? monotonic;
    this.metrics = new Map();
    this._active = new Set(); // ids counted in activeConnections
    this._samples = new Map(); // id -> latency samples behind its averageLatency
    this._latencySum = 0;
    this._latencyCount = 0;
    this._tracked = new Map(); // WebSocketConnection -> its tracker
    this.globalMetrics = {
      totalConnections: 0,
      activeConnections: 0,
      totalMessagesSent: 0,
      totalMessagesReceived: 0,
      totalErrors: 0,
      averageLatency: 0,
      uptime: this._now(),
    };
  }

  // -- the seed's methods ---------------------------------------------------------------------

  recordConnectionEstablished(connectionId, userId, connectionType) {
    const now = this._now();
    const known = this.metrics.get(connectionId);
    if (known) {
      known.lastActivity = now;
      if (this._active.has(connectionId)) return; // already counted
      known.reconnectAttempts++; // the same connection, back after a drop
    } else {
      this.metrics.set(connectionId, {
        connectionId,
        userId,
        connectionType,
        connectedAt: now,
        lastActivity: now,
        messagesSent: 0,
        messagesReceived: 0,
        bytesSent: 0,
        bytesReceived: 0,
        errors: 0,
        reconnectAttempts: 0,
        averageLatency: 0,
        peakLatency: 0,
        connectionDrops: 0,
      });
    }
    this._active.add(connectionId);
    this.globalMetrics.totalConnections++;
    this.globalMetrics.activeConnections++;
  }

  recordMessageSent(connectionId, messageSize, latency) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.messagesSent++;
      metrics.bytesSent += messageSize;
      metrics.lastActivity = this._now();
      if (latency !== undefined) this.recordLatency(connectionId, latency);
    }
    this.globalMetrics.totalMessagesSent++;
  }

  recordMessageReceived(connectionId, messageSize) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) {
      metrics.messagesReceived++;
      metrics.bytesReceived += messageSize;
      metrics.lastActivity = this._now();
    }
    this.globalMetrics.totalMessagesReceived++;
  }

  recordError(connectionId, error) {
    const metrics = this.metrics.get(connectionId);
    if (metrics) metrics.errors++;
    this.globalMetrics.totalErrors++;
  }

  recordConnectionDropped(connectionId) {
    const metrics = this.metrics.get(connectionId);
    if (!metrics) return;
    metrics.connectionDrops++;
    this._deactivate(connectionId);
  }

  getConnectionMetrics(connectionId) {
    const metrics = this.metrics.get(connectionId);
    return metrics ? { ...metrics } : undefined;
  }

  getGlobalMetrics() {
    return { ...this.globalMetrics };
  }

  getConnectionsByType() {
    const typeCounts = new Map();
    for (const metrics of this.metrics.values()) {
      typeCounts.set(metrics.connectionType, (typeCounts.get(metrics.connectionType) || 0) + 1);
    }
    return typeCounts;
  }

  cleanupInactiveConnections(maxIdleTime = 3600000) {
    const now = this._now();
    for (const [connectionId, metrics] of [...this.metrics]) {
      if (now - metrics.lastActivity > maxIdleTime) {
        this.metrics.delete(connectionId);
        this._samples.delete(connectionId);
        this._deactivate(connectionId);
      }
    }
  }

  // -- added ----------------------------------------------------------------------------------

  /** One latency sample (ms) for a connection: its average and peak, and the global average.
   * What the seed's recordMessageSent does with its `latency` argument. */
  recordLatency(connectionId, latency) {
    const metrics = this.metrics.get(connectionId);
    if (!metrics || !Number.isFinite(latency)) return;
    const samples = (this._samples.get(connectionId) ?? 0) + 1;
    this._samples.set(connectionId, samples);
    // The seed's rolling average, over the samples instead of over every message sent.
    metrics.averageLatency = (metrics.averageLatency * (samples - 1) + latency) / samples;
    metrics.peakLatency = Math.max(metrics.peakLatency, latency);
    this._latencySum += latency;
    this._latencyCount++;
    this.globalMetrics.averageLatency = this._latencySum / this._latencyCount;
  }

  /** The connection ended on purpose (a `disconnect()`, a replaced socket): no longer active,
   * and no drop. */
  recordConnectionClosed(connectionId) {
    if (this.metrics.has(connectionId)) this._deactivate(connectionId);
  }

  /**
   * Count what crosses a WebSocketConnection's sockets. Each socket gets its own record, keyed
   * by the server's `connection_id` (with `userId` and `connectionType` from its
   * `connection.established`), so its figures are the server's for the same socket
   * (`GET /api/metrics/connections/<connection_id>/`) seen from the other end:
   * - messagesSent / bytesSent: every frame written (the token, pings, pongs), UTF-8 bytes;
   *   messagesReceived / bytesReceived: every frame received. Frames before
   *   `connection.established` are added to the record when it comes.
   * - errors: the server's error envelopes on the socket (what the server counts); failures the
   *   client sees alone (a socket that never opened, a full queue) count in totalErrors only.
   * - averageLatency / peakLatency: the round trips of the connection's own heartbeat pings.
   * - reconnectAttempts: 0 for the connection's first socket; for a later one, the attempts it
   *   took (at least 1). connectionDrops: 1 on a socket that closed without `disconnect()`.
   * Track right after constructing the connection (its socket opens in a microtask at the
   * earliest) to count every frame; an already open socket is counted from now.
   * Returns a function that stops tracking (records stay).
   */
  track(connection) {
    if (this._tracked.has(connection)) return this._tracked.get(connection).untrack;
    const tracker = {
      socket: null, // the current socket: {id, sent: [sizes], received: [sizes], errors, pings}
      last: null, // connection id of the newest socket with a record
      established: false, // some socket of this connection was established
      attempts: 0, // reconnect attempts since the last establishment
      totals: { sockets: 0, messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, errors: 0, reconnectAttempts: 0, connectionDrops: 0 },
      untrack: null,
    };
    const newSocket = () => ({ id: null, sent: [], received: [], errors: 0, pings: [] });
    const established = (socket, message) => {
      const id = message.connection_id;
      if (typeof id !== "string" || socket.id !== null) return;
      socket.id = id;
      tracker.last = id;
      const userId = message.user?.id == null ? null : String(message.user.id);
      this.recordConnectionEstablished(id, userId, message.connection_type ?? null);
      if (tracker.established) {
        const record = this.metrics.get(id);
        const attempts = Math.max(1, tracker.attempts);
        if (record) record.reconnectAttempts = attempts;
        tracker.totals.reconnectAttempts += attempts;
      }
      tracker.established = true;
      tracker.attempts = 0;
      tracker.totals.sockets++;
      for (const size of socket.sent) sent(socket, size);
      for (const size of socket.received) received(socket, size);
      for (let i = 0; i < socket.errors; i++) error(socket);
      socket.sent = socket.received = null;
    };
    const sent = (socket, size) => {
      this.recordMessageSent(socket.id, size);
      tracker.totals.messagesSent++;
      tracker.totals.bytesSent += size;
    };
    const received = (socket, size) => {
      this.recordMessageReceived(socket.id, size);
      tracker.totals.messagesReceived++;
      tracker.totals.bytesReceived += size;
    };
    const error = (socket) => {
      this.recordError(socket.id, null);
      tracker.totals.errors++;
    };
    /** The socket is over: a drop unless the client ended it (`disconnect()`, a replacement). */
    const end = (dropped) => {
      const socket = tracker.socket;
      tracker.socket = null;
      if (!socket) return;
      if (socket.id === null) {
        // Never established: no record; its frames count in the global totals.
        for (const size of socket.sent) this.recordMessageSent(null, size);
        for (const size of socket.received) this.recordMessageReceived(null, size);
        for (let i = 0; i < socket.errors; i++) this.recordError(null, null);
        return;
      }
      if (dropped) {
        this.recordConnectionDropped(socket.id);
        tracker.totals.connectionDrops++;
      } else {
        this.recordConnectionClosed(socket.id);
      }
    };
    const handlers = {
      // A new socket; one still counted here was replaced by the client (reconnect()).
      open: () => {
        end(false);
        tracker.socket = newSocket();
      },
      frameSent: (text) => {
        const socket = tracker.socket;
        if (!socket) return;
        const size = utf8ByteLength(text);
        if (socket.id === null) socket.sent.push(size);
        else sent(socket, size);
        const id = pingId(text);
        if (id !== undefined) {
          socket.pings.push({ id, at: this._clock() });
          if (socket.pings.length > 32) socket.pings.shift(); // unanswered: keep the newest
        }
      },
      frameReceived: (data) => {
        const socket = tracker.socket;
        if (!socket) return;
        const size = frameByteLength(data);
        if (socket.id === null) socket.received.push(size);
        else received(socket, size);
      },
      message: (message) => {
        const socket = tracker.socket;
        if (!socket) return;
        if (message.type === "connection.established") {
          established(socket, message);
        } else if (message.type === "error") {
          if (socket.id === null) socket.errors++;
          else error(socket);
        } else if (message.type === "pong" && socket.id !== null) {
          // The answer to our ping: by its id, else the oldest unanswered (the server answers
          // a socket's frames in order).
          const requestId = message.request_id ?? null;
          let index = requestId === null ? socket.pings.findIndex((p) => p.id === null) : socket.pings.findIndex((p) => p.id === requestId);
          if (index < 0) return;
          const ping = socket.pings.splice(index, 1)[0];
          this.recordLatency(socket.id, this._clock() - ping.at);
        }
      },
      // disconnect() sets "disconnected" before its close event; any other close comes first.
      close: () => end(connection.state !== "disconnected"),
      reconnecting: (info) => {
        tracker.attempts = Math.max(tracker.attempts, Number(info?.attempt) || 0);
      },
      error: (err) => {
        // Envelopes are counted as messages above; this is what the client saw alone.
        if (!err?.envelope) this.recordError(null, err);
      },
    };
    const off = Object.entries(handlers).map(([event, handler]) => connection.on(event, handler));
    if (connection.isConnected && connection.established) {
      tracker.socket = newSocket();
      established(tracker.socket, connection.established);
    }
    tracker.untrack = () => {
      if (this._tracked.get(connection) !== tracker) return;
      this._tracked.delete(connection);
      for (const unsubscribe of off) unsubscribe();
    };
    this._tracked.set(connection, tracker);
    return tracker.untrack;
  }

  /** The record of a tracked connection's current (or last) socket. */
  getTrackedMetrics(connection) {
    const tracker = this._tracked.get(connection);
    return tracker?.last ? this.getConnectionMetrics(tracker.last) : undefined;
  }

  /** A tracked connection's figures over all its sockets since `track()`: sockets established,
   * messages and bytes each way, errors, reconnect attempts and drops. */
  getTrackedTotals(connection) {
    const tracker = this._tracked.get(connection);
    return tracker ? { ...tracker.totals } : undefined;
  }

  _deactivate(connectionId) {
    if (this._active.delete(connectionId)) this.globalMetrics.activeConnections--;
  }
}
