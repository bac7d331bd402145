// The seed's client examples (docs: ../shared seed, "Client Integration", "Testing Strategies",
// "Error Handling") written against this package's declarations. `tsc --noEmit -p clients/js`
// type-checks it; nothing runs it. Imports go through the package's own name, so the
// package.json "exports" map and its "types" conditions are checked too.
// Lines marked @ts-expect-error must fail to type-check: they keep the declarations strict.

import * as React from "react";
import { createElement } from "react";
import * as Vue from "vue";
import { defineComponent, h, reactive, watch } from "vue";

import {
  CLOSED,
  CloseCode,
  ConnectionLifecycleManager,
  DEFAULT_RATE_LIMITS,
  DEFAULT_RATE_LIMIT_RETRY_MS,
  DEFAULT_RATE_LIMIT_RETRY_SECONDS,
  ERROR_TYPES,
  OPEN,
  OfflineOutbox,
  OptimisticUpdateManager,
  WebSocketConnection,
  WebSocketError,
  WebSocketErrorHandler,
  WebSocketRateLimiter,
  memoryStorage,
  newUpdateId,
  normalizeError,
  outboxMessage,
  tripUpdateMessage,
  useWebSocket as useWebSocketOverGlobalReact,
  useWebSocketConnection as useWebSocketConnectionOverGlobalVue,
  type ConflictResolver,
  type ConnectionEstablished,
  ConnectionState, // a value (the frozen names) and the type of its values
  type ErrorContext,
  type ErrorRecoveryAction,
  type OptimisticUpdate,
  type OutboxCounts,
  type OutboxEntry,
  type TripAck,
  type SendResult,
  type ServerMessage,
  type UseWebSocketOptions,
  type WebSocketConnectionOptions,
} from "@tripsage/realtime-client";
import { createUseWebSocket, type UseWebSocketReturn } from "@tripsage/realtime-client/react";
import { createUseWebSocketConnection } from "@tripsage/realtime-client/vue";
import { createManagedConnection } from "@tripsage/realtime-client/lifecycle";

// -- WebSocketConnection: options and events ----------------------------------------------------

const options: WebSocketConnectionOptions = {
  url: "wss://tripsage.example/ws/trips/42/",
  token: "access-token",
  reconnectAttempts: 3,
  heartbeatInterval: 30000,
  heartbeatTimeout: 70000,
  reconnectDelay: 1000,
  maxReconnectDelay: 30000,
  maxQueueSize: 1000,
  autoConnect: true,
  errorCloseGrace: 1000,
  rateLimiter: new WebSocketRateLimiter({ enforceBurst: true }),
  channelType: "trip_collaboration",
};
const connection = new WebSocketConnection(options);
// The DOM's WebSocket constructor fits the WebSocket option (as Node's global one does).
new WebSocketConnection({ url: "ws://127.0.0.1:8000/ws/trips/1/", WebSocket });

// @ts-expect-error: a url is required
new WebSocketConnection({ token: "t" });
// @ts-expect-error: reconnectAttempts is a number
new WebSocketConnection({ url: "ws://x", reconnectAttempts: "3" });

connection.on("open", () => undefined);
connection.on("message", (message: ServerMessage) => {
  if (message.type === "trip.updated" && typeof message.seq === "number") connection.lastSeq = message.seq;
});
connection.on("established", (message) => {
  const type: "trip_collaboration" | "chat" | "agent_status" | "notifications" = message.connection_type;
  const bytes: number = message.limits.max_message_bytes;
  void [type, bytes, message.user.username, message.heartbeat_interval];
});
connection.on("error", (error) => {
  const code: string = error.code;
  const closeCode: number | null = error.closeCode;
  const retryAfter = error.details.retry_after;
  const requestId: string | null = error.requestId;
  void [code, closeCode, retryAfter, requestId, error.envelope?.error.message, error.message];
});
connection.on("close", ({ code, reason, wasClean, error }) => {
  if (code === CloseCode.AUTHENTICATION_FAILED) void [reason, wasClean, error?.code];
});
connection.on("reconnecting", ({ attempt, delay, code }) => void [attempt + delay + code]);
connection.on("reconnected", (message) => void message.connection_id);
const offState = connection.on("stateChange", (state, previous) => {
  const now: ConnectionState = state;
  void [now, previous];
});
offState();
// @ts-expect-error: no such event
connection.on("connected", () => undefined);
// @ts-expect-error: a close listener gets one CloseInfo object, not (code, reason)
connection.on("close", (code: number, reason: string) => void [code, reason]);

async function connectAndSend(): Promise<void> {
  const opened: void = await connection.connect();
  const established: ConnectionEstablished = await connection.whenEstablished();
  void [opened, established.token_expires_at];
  const result: SendResult = connection.send({ type: "chat.message", id: "1", content: "hi" });
  // @ts-expect-error: send answers "sent" | "queued" | "dropped"
  const wrong: boolean = connection.send({ type: "ping" });
  void [result, wrong];
  connection.setToken("new-access-token");
  void connection.reconnect();
  connection.disconnect(CloseCode.NORMAL, "done");
  const readyState: number = OPEN + CLOSED;
  void [readyState, connection.queuedCount, connection.isConnected, connection.clearQueue()];
}
void connectAndSend;

// @ts-expect-error: the states are disconnected, connecting, connected and reconnecting
const badState: ConnectionState = "open";
void badState;
const named: ConnectionState = ConnectionState.RECONNECTING;
const isUp = (state: ConnectionState): boolean => state === ConnectionState.CONNECTED;
void [named, isUp(connection.state)];
// @ts-expect-error: ConnectionState is frozen
ConnectionState.CONNECTED = "open";

// -- The lifecycle manager ----------------------------------------------------------------------

const lifecycle = new ConnectionLifecycleManager(connection, { window: null });
lifecycle.on("stateChange", (state: ConnectionState) => void state);
lifecycle.on("offline", () => undefined);
lifecycle.destroy();

// -- React hook (the seed's useWebSocket) -------------------------------------------------------

const useWebSocket = createUseWebSocket(React);

const hookOptions: UseWebSocketOptions = {
  url: "wss://tripsage.example/ws/trips/42/",
  token: "access-token",
  reconnectAttempts: 3,
  heartbeatInterval: 30000,
  onMessage: (message) => void message.type,
  onError: (error) => void error.code,
  onConnect: () => undefined,
  onDisconnect: () => undefined,
};

export function TripStatus(props: { tripId: number; token: string }): React.ReactElement {
  const { connectionState, sendMessage, lastMessage, error, reconnect, disconnect }: UseWebSocketReturn =
    useWebSocket({ ...hookOptions, url: `wss://tripsage.example/ws/trips/${props.tripId}/`, token: props.token });
  const sent: SendResult = sendMessage({ type: "presence.update", id: "2", status: "active" });
  const label = connectionState === "connected" ? "Connected" : connectionState === "reconnecting" ? "Reconnecting…" : "Offline";
  return createElement(
    "div",
    null,
    createElement("span", { className: "connection-status" }, label),
    createElement("button", { onClick: reconnect }, "Reconnect"),
    createElement("button", { onClick: disconnect }, "Disconnect"),
    error ? createElement("p", { role: "alert" }, `${error.code}: ${error.message}`) : null,
    createElement("pre", null, JSON.stringify(lastMessage), sent),
  );
}

// @ts-expect-error: the hook needs a url
useWebSocket({ token: "t" });

// Over globalThis.React / globalThis.Vue (a page that loads them as globals): the same types.
export function GlobalReactStatus(): string {
  const { connectionState }: UseWebSocketReturn = useWebSocketOverGlobalReact(hookOptions);
  return connectionState;
}
export function globalVueStatus(): ConnectionState {
  return useWebSocketConnectionOverGlobalVue(hookOptions).connectionState.value;
}

// -- Vue composable (the seed's useWebSocketConnection) -----------------------------------------

const useWebSocketConnection = createUseWebSocketConnection(Vue);

export const TripStatusVue = defineComponent({
  props: { tripId: { type: Number, required: true }, token: { type: String, required: true } },
  setup(props) {
    // Reactive options: a new token is sent as auth.refresh, a new url reconnects.
    const options = reactive<UseWebSocketOptions>({
      url: `wss://tripsage.example/ws/trips/${props.tripId}/`,
      token: props.token,
      onError: (error) => void error.code,
    });
    watch(
      () => props.token,
      (token) => {
        options.token = token;
      },
    );
    const { connectionState, lastMessage, error, sendMessage, reconnect, disconnect } = useWebSocketConnection(options);
    const state: ConnectionState = connectionState.value;
    void state;
    // @ts-expect-error: the refs are read-only
    connectionState.value = "connected";
    return () =>
      h("div", [
        h("span", { class: "connection-status" }, connectionState.value),
        h("button", { onClick: reconnect }, "Reconnect"),
        h("button", { onClick: disconnect }, "Disconnect"),
        h("button", { onClick: () => sendMessage({ type: "ping" }) }, "Ping"),
        error.value ? h("p", { role: "alert" }, error.value.code) : null,
        h("pre", JSON.stringify(lastMessage.value)),
      ]);
  },
});

// -- The hooks' shared setup --------------------------------------------------------------------

const managed = createManagedConnection(hookOptions, {
  onState: (state) => void state,
  onMessage: (message) => void message,
  onError: (error) => void error.code,
  onConnect: () => undefined,
  onDisconnect: (info) => void info.code,
});
managed.lifecycle.destroy();

// -- Optimistic updates (the seed's OptimisticUpdateManager test) -------------------------------

const resolver: ConflictResolver = {
  hasConflict: () => false,
  resolve: (update, serverUpdate) => ({ ...update.data, ...serverUpdate.data }),
};
const manager = new OptimisticUpdateManager(resolver, {
  applyToUI: (update) => void update.data,
  rollbackUI: (update, reason) => void [update.id, reason],
  onConflict: ({ update, conflictId, serverValue }) => void [update.id, conflictId, serverValue],
});

async function optimistic(): Promise<void> {
  const update: OptimisticUpdate = {
    id: "test-update",
    operation: "update",
    resourceType: "trip",
    resourceId: "trip-123",
    data: { name: "New Name" },
    timestamp: Date.now(),
    serverConfirmed: false,
  };
  const applied = await manager.applyOptimisticUpdate(update);
  const id: string = applied.id;
  connection.send(tripUpdateMessage({ ...applied, baseVersion: 3 }));
  await manager.handleServerUpdate({ resourceId: "trip-123", data: { name: "New Name" } });
  const pending: boolean = manager.pendingUpdates.has(id);
  manager.on("confirmed", (confirmed, answer) => void [confirmed.serverConfirmed, answer]);
  manager.on("rolledBack", ({ update: rolled, error }) => void [rolled.id, error]);
  connection.on("message", (message) => void manager.handleMessage(message));
  // A stale edit of a text field merged by the server: the field takes the merged text.
  manager.on("merged", ({ update: merged, ack, value }) => void [merged.proposedValue, ack.type, value]);
  const ack: TripAck = { type: "ack", update_id: id, status: "merged", original_status: "merged", field: "notes", value: "both", version: 4, seq: 9, conflict_id: null };
  manager.handleAck(ack);
  // @ts-expect-error: no such ack status
  const badAck: TripAck["status"] = "rebased";
  void [pending, badAck];
}
void optimistic;

// -- The offline outbox -------------------------------------------------------------------------

const outbox = new OfflineOutbox({ userId: 3, tripId: 42, storage: memoryStorage() });
const detach = outbox.attach(connection, "trip");
outbox.attach(connection, "chat");
const kept = outbox.addEdit({ field: "budget", value: "3500", baseVersion: 7, updateId: newUpdateId() });
const keptId: string = kept.update_id;
const note = outbox.addMessage({ text: "see you there" });
const wire = outboxMessage(kept);
const wireType: "trip.update" = wire.type;
outbox.on("change", ({ waiting, edits, messages }: OutboxCounts) => void [waiting, edits, messages]);
outbox.on("settled", ({ entry, status }) => void [entry.kind === "edit" ? entry.field : entry.text, status]);
outbox.on("refused", ({ entry, error }) => void [entry.id, error.type]);
const everything: OutboxEntry[] = outbox.entries;
void [keptId, note.client_id, wireType, everything, outbox.size, outbox.waitingCount, outbox.waitingEntries().length, outbox.key];
detach();
// @ts-expect-error: an edit needs its base version
outbox.addEdit({ field: "budget", value: "1" });
// @ts-expect-error: the streams are "trip" and "chat"
outbox.attach(connection, "notifications");

// -- Errors and rate limits (the seed's tables) -------------------------------------------------

const handler = new WebSocketErrorHandler({ maxRetries: 3, storage: null });
const context: ErrorContext = { canRefreshToken: true, connectionState: "connected" };
connection.on("error", (error: WebSocketError) => {
  const action: ErrorRecoveryAction = handler.handleError(error, context);
  if (action.action === "retry") setTimeout(() => void connection.reconnect(), action.retryAfterMs ?? DEFAULT_RATE_LIMIT_RETRY_MS);
  // @ts-expect-error: the actions are retry, refresh_token, redirect_login and fail
  if (action.action === "reconnect") void 0;
});
const recovery: string = ERROR_TYPES.RATE_LIMIT_EXCEEDED.recovery;
const normalized = normalizeError({ type: "error", error: { code: "SERVER_ERROR", message: "x", details: {} } });
const limiter = new WebSocketRateLimiter({ now: () => 0, limits: DEFAULT_RATE_LIMITS });
const chatWindow: number = DEFAULT_RATE_LIMITS.chat.window;
if (limiter.canSendMessage("chat")) limiter.blockFor("chat", 0.5);
const waitMs: number = limiter.waitMs("chat");
const seedSeconds: 60 = DEFAULT_RATE_LIMIT_RETRY_SECONDS;
void [recovery, normalized.code, chatWindow, limiter.getTimeUntilNextMessage("chat"), limiter.getRemainingMessages("chat"), waitMs, seedSeconds];

// -- Performance Monitoring: the seed's WebSocketMetricsCollector, fed by a connection ----------
// (imported here, through the package's subpath, to keep this block apart from the others)
import { WebSocketMetricsCollector as MetricsCollector, type ConnectionMetrics, type GlobalMetrics } from "@tripsage/realtime-client/metrics";

const collector = new MetricsCollector();
collector.recordConnectionEstablished("c1", "u1", "trip_collaboration");
collector.recordMessageSent("c1", 120, 35);
collector.recordMessageReceived("c1", 480);
collector.recordError("c1", new Error("x"));
collector.recordConnectionDropped("c1");
collector.cleanupInactiveConnections(3600000);
const perSocket: ConnectionMetrics | undefined = collector.getConnectionMetrics("c1");
const global: GlobalMetrics = collector.getGlobalMetrics();
const byType: Map<string | null, number> = collector.getConnectionsByType();
const untrack: () => void = collector.track(connection);
const tracked = collector.getTrackedMetrics(connection);
// @ts-expect-error: a message's size is a number of bytes
collector.recordMessageSent("c1", "hello");
void [perSocket?.averageLatency, global.activeConnections, byType, untrack, tracked?.connectionId, collector.getTrackedTotals(connection)?.reconnectAttempts];
