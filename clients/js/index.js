// TripSage Realtime client: everything, from one module (docs/client.md).
export {
  CONNECTING,
  OPEN,
  CLOSING,
  CLOSED,
  CloseCode,
  ConnectionState,
  EventEmitter,
  WebSocketError,
  WebSocketConnection,
} from "./websocket-connection.js";
export { ConnectionLifecycleManager, createManagedConnection } from "./lifecycle.js";
export { DEFAULT_RATE_LIMITS, WebSocketRateLimiter } from "./rate-limiter.js";
export {
  DEFAULT_RATE_LIMIT_RETRY_MS,
  DEFAULT_RATE_LIMIT_RETRY_SECONDS,
  ERROR_TYPES,
  WebSocketErrorHandler,
  normalizeError,
} from "./error-handler.js";
export { OptimisticUpdateManager, newUpdateId, tripUpdateMessage } from "./optimistic.js";
export { OUTBOX_STORAGE_PREFIX, OfflineOutbox, memoryStorage, outboxMessage } from "./outbox.js";
export { WebSocketMetricsCollector, frameByteLength, utf8ByteLength } from "./metrics.js";
export { createUseWebSocket, useWebSocket } from "./react.js";
export { createUseWebSocketConnection, useWebSocketConnection } from "./vue.js";
