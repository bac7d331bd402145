// Type declarations for metrics.js (docs/client.md, "Metrics").
import type { WebSocketConnection } from "./websocket-connection.js";

/** The seed's ConnectionMetrics: one socket's figures. Times in ms since the epoch, latencies
 * in ms, bytes in UTF-8. */
export interface ConnectionMetrics {
  connectionId: string;
  /** The seed's type: a string (a tracked socket's `user.id`, as text); null if not known. */
  userId: string | null;
  connectionType: string | null;
  connectedAt: number;
  lastActivity: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  errors: number;
  reconnectAttempts: number;
  /** Over the latency samples (0 before the first). */
  averageLatency: number;
  peakLatency: number;
  connectionDrops: number;
}

/** The seed's GlobalMetrics. `uptime` is when the collector started (ms since the epoch), as
 * in the seed; `averageLatency` the average of every latency sample. */
export interface GlobalMetrics {
  totalConnections: number;
  activeConnections: number;
  totalMessagesSent: number;
  totalMessagesReceived: number;
  totalErrors: number;
  averageLatency: number;
  uptime: number;
}

/** A tracked connection's figures over all its sockets since `track()`. */
export interface TrackedTotals {
  /** Sockets established. */
  sockets: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  errors: number;
  reconnectAttempts: number;
  connectionDrops: number;
}

export interface MetricsCollectorOptions {
  /** Wall clock in ms (Date.now): connectedAt, lastActivity, uptime. */
  now?: () => number;
  /** Monotonic clock in ms for round trips (performance.now). */
  clock?: () => number;
}

/** The UTF-8 bytes of a string, as a WebSocket text frame carries it. */
export declare function utf8ByteLength(text: string): number;

/** The bytes of a frame as a socket delivers it (text as UTF-8, ArrayBuffer, typed array, Blob). */
export declare function frameByteLength(data: unknown): number;

/** The seed's WebSocketMetricsCollector, with its methods, fields and meanings (where the seed's
 * code is wrong, docs/client.md says how this one differs), fed by `track(connection)`. */
export declare class WebSocketMetricsCollector {
  constructor(options?: MetricsCollectorOptions);
  /** Connection id -> its record (getConnectionMetrics returns copies). */
  metrics: Map<string, ConnectionMetrics>;
  globalMetrics: GlobalMetrics;
  recordConnectionEstablished(connectionId: string, userId: string | null, connectionType: string | null): void;
  recordMessageSent(connectionId: string | null, messageSize: number, latency?: number): void;
  recordMessageReceived(connectionId: string | null, messageSize: number): void;
  recordError(connectionId: string | null, error: unknown): void;
  recordConnectionDropped(connectionId: string): void;
  getConnectionMetrics(connectionId: string): ConnectionMetrics | undefined;
  getGlobalMetrics(): GlobalMetrics;
  getConnectionsByType(): Map<string | null, number>;
  /** Forget records idle for longer than maxIdleTime ms (1 hour). */
  cleanupInactiveConnections(maxIdleTime?: number): void;
  /** One latency sample in ms (what recordMessageSent does with its `latency`). */
  recordLatency(connectionId: string, latency: number): void;
  /** The connection ended on purpose: no longer active, no drop. */
  recordConnectionClosed(connectionId: string): void;
  /** Count what crosses the connection's sockets, one record per socket keyed by the server's
   * connection_id. Returns a function that stops tracking. */
  track(connection: WebSocketConnection): () => void;
  /** The record of a tracked connection's current (or last) socket. */
  getTrackedMetrics(connection: WebSocketConnection): ConnectionMetrics | undefined;
  /** A tracked connection's figures over all its sockets since track(). */
  getTrackedTotals(connection: WebSocketConnection): TrackedTotals | undefined;
}
