// Type declarations for index.js: everything, from one module (docs/client.md).
export * from "./websocket-connection.js";
export * from "./lifecycle.js";
export * from "./rate-limiter.js";
export * from "./error-handler.js";
export * from "./optimistic.js";
export * from "./outbox.js";
export * from "./metrics.js";
export * from "./react.js";
export * from "./vue.js";
