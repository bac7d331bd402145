// Type declarations for websocket-connection.js (docs/client.md, protocol: docs/protocol.md).

/** WebSocket readyState values (injected fakes may lack the constructor's statics). */
export declare const CONNECTING: 0;
export declare const OPEN: 1;
export declare const CLOSING: 2;
export declare const CLOSED: 3;

/** Close codes the server uses (docs/protocol.md, "Close codes"). */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  /** Never sent on the wire: the socket dropped without a close frame. */
  ABNORMAL: 1006;
  MESSAGE_TOO_BIG: 1009;
  SERVER_FAULT: 4011;
  TRY_AGAIN_LATER: 4013;
  AUTHENTICATION_FAILED: 4001;
  AUTHORIZATION_FAILED: 4003;
  HEARTBEAT_TIMEOUT: 4008;
  SLOW_CONSUMER: 4009;
  RATE_LIMITED: 4029;
}>;

/** One of CloseCode's values. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** The connection's states, with the seed's `ConnectionState` names (a frozen object). */
export declare const ConnectionState: Readonly<{
  DISCONNECTED: "disconnected";
  CONNECTING: "connecting";
  CONNECTED: "connected";
  RECONNECTING: "reconnecting";
}>;

/** A connection's (and the hooks' `connectionState`) state: one of ConnectionState's values,
 * `"disconnected" | "connecting" | "connected" | "reconnecting"`. */
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

/** The server's connection types (the rate limiter's channel types). */
export type ConnectionType = "trip_collaboration" | "chat" | "agent_status" | "notifications";

/** The seed's error codes, and the client's own (QUEUE_FULL, CONNECTION_CLOSED, UNKNOWN_ERROR). */
export type ErrorCode =
  | "CONNECTION_FAILED"
  | "AUTHENTICATION_FAILED"
  | "AUTHORIZATION_FAILED"
  | "RATE_LIMIT_EXCEEDED"
  | "MESSAGE_TOO_LARGE"
  | "INVALID_MESSAGE_FORMAT"
  | "SERVER_ERROR"
  | "NETWORK_ERROR"
  | "QUEUE_FULL"
  | "CONNECTION_CLOSED"
  | "UNKNOWN_ERROR"
  // The server may add codes (docs/protocol.md, "Errors"); keeps the literals above suggested.
  | (string & {});

/** Any JSON value (what `send` encodes and the server's fields hold). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Every server message: `type`, `id`, `timestamp`, and the type's own fields
 * (docs/protocol.md, "Server messages"). Logged events carry `seq`. */
export interface ServerMessage {
  type: string;
  id?: string;
  timestamp?: string;
  request_id?: string | null;
  seq?: number;
  [field: string]: unknown;
}

/** `connection.established`: the server accepted the token. */
export interface ConnectionEstablished extends ServerMessage {
  type: "connection.established";
  connection_id: string;
  connection_type: ConnectionType;
  user: { id: number; username: string };
  heartbeat_interval: number;
  token_expires_at: string;
  limits: {
    max_message_bytes: number;
    heartbeat_timeout_seconds: number;
    token_grace_seconds: number;
    messages_per_minute: number;
    message_burst: number;
  };
}

/** The error envelope; `details` depends on the code (e.g. `retry_after`, in seconds). */
export interface ErrorEnvelope extends ServerMessage {
  type: "error";
  error: { code: ErrorCode; message: string; details: { [key: string]: JsonValue } };
  request_id: string | null;
}

/** `rate_limit_status`: the connection's message budget. The seed's fields with the seed's
 * meaning (`current_usage`: messages accepted in this fixed window; `remaining`: `limit` minus
 * those, at least 0; `reset_at`: the window's end) and the token bucket that decides: `burst`,
 * `burst_remaining` (what may be sent right now), `burst_reset_at` (when it is full again). */
export interface RateLimitStatus extends ServerMessage {
  type: "rate_limit_status";
  current_usage: number;
  limit: number;
  remaining: number;
  reset_at: string;
  window_seconds: number;
  burst: number;
  burst_remaining: number;
  burst_reset_at: string;
  /** The user's `auth.refresh` bucket, apart from the message budget (docs/protocol.md). */
  auth_refresh: RefreshBucket;
}

/** `rate_limit_status.auth_refresh`: `remaining` refreshes may be sent now; `reset_at`, when the
 * bucket is full again. Over it a refresh is refused with RATE_LIMIT_EXCEEDED, `details.limit_type`
 * "auth.refresh"; the connection sends it again after `retry_after`. */
export interface RefreshBucket {
  limit: number;
  burst: number;
  remaining: number;
  window_seconds: number;
  reset_at: string;
}

/** `ack`: the answer to `trip.update` and `conflict.resolve`. `merged`: a stale edit of a text
 * field merged three-way with the changes made since its base; `value` is the merged text. */
export interface TripAck extends ServerMessage {
  type: "ack";
  status: "applied" | "merged" | "conflict" | "duplicate" | "already_resolved";
  original_status: "applied" | "merged" | "conflict" | "already_resolved";
  update_id: string;
  field: string;
  value: JsonValue;
  version: number;
  seq: number;
  conflict_id: number | null;
}

/** `trip.updated`: a field changed. `value` is the value in force (for a merge, the merged
 * text); `source` says how it came: an edit, a three-way merge, or a conflict's resolution. */
export interface TripUpdated extends ServerMessage {
  type: "trip.updated";
  seq: number;
  trip_id: number;
  update_id: string | null;
  field: string;
  value: JsonValue;
  version: number;
  by: { id: number; username: string } | null;
  source?: "edit" | "merge" | "resolution";
}

/** Anything a listener can be. */
export type Listener = (...args: any[]) => void;

/** A tiny event emitter. `on`/`once` return an unsubscribe function. A listener that throws is
 * reported (reportError or console.error) and does not stop the others.
 * `Events` maps event names to listener argument tuples. */
export declare class EventEmitter<Events extends { [E in keyof Events]: unknown[] } = { [event: string]: any[] }> {
  constructor();
  on<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): () => void;
  once<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): () => void;
  off<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): this;
  removeAllListeners(event?: keyof Events & string): this;
  listenerCount(event: keyof Events & string): number;
  /** True when the event had listeners. */
  emit<E extends keyof Events & string>(event: E, ...args: Events[E]): boolean;
}

export interface WebSocketErrorOptions {
  code?: ErrorCode;
  details?: { [key: string]: unknown } | null;
  closeCode?: number | null;
  requestId?: string | null;
  envelope?: ErrorEnvelope | null;
  cause?: unknown;
}

/** An Error from the server's error envelope or from the connection itself. */
export declare class WebSocketError extends Error {
  constructor(message: string, options?: WebSocketErrorOptions);
  name: "WebSocketError";
  /** The seed's error code (AUTHENTICATION_FAILED, ...). */
  code: ErrorCode;
  /** The envelope's details ({} when none). */
  details: { [key: string]: unknown };
  /** The WebSocket close code when the socket closed because of it. */
  closeCode: number | null;
  /** The envelope's request_id. */
  requestId: string | null;
  /** The whole server message, when the error came from one. */
  envelope: ErrorEnvelope | null;
  static fromEnvelope(envelope: ErrorEnvelope, closeCode?: number | null): WebSocketError;
}

/** The part of the WebSocket interface the connection uses (a browser's or Node's WebSocket,
 * or a test's fake). */
export interface WebSocketLike {
  readonly readyState?: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // The connection assigns these; `any` events, so that the DOM's WebSocket (whose handlers
  // take Event, MessageEvent and CloseEvent) fits: it reads `data`, `code`, `reason`, `wasClean`.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the connection needs of a rate limiter (a WebSocketRateLimiter). */
export interface ConnectionRateLimiter {
  canSendMessage(channelType: string): boolean;
  /** The seed's figure; the connection uses it only when waitMs is missing. */
  getTimeUntilNextMessage(channelType: string): number;
  /** Ms until canSendMessage can answer true (0: now). */
  waitMs?(channelType: string): number;
  updateFromServer(channelType: string, message: object): boolean;
}

export type TimerHandle = unknown;

export interface WebSocketConnectionOptions {
  /** ws:// or wss:// URL of the endpoint, e.g. wss://host/ws/trips/42/. */
  url: string;
  /** Access token, sent as the first message `{"token": ...}`. */
  token?: string | null;
  /** Reconnect attempts after a drop (3; Infinity allowed; 0 never reconnects). */
  reconnectAttempts?: number;
  /** Client ping interval in ms (30000; 0 disables the client's pings). */
  heartbeatInterval?: number;
  /** Ms of silence after which the socket is replaced (2 * heartbeatInterval + 10000; 0 disables). */
  heartbeatTimeout?: number;
  /** Base backoff in ms (1000). */
  reconnectDelay?: number;
  /** Backoff ceiling in ms (30000). */
  maxReconnectDelay?: number;
  /** Messages kept while not connected (1000). */
  maxQueueSize?: number;
  /** Open the socket right after construction (true; a microtask later, so listeners attached
   * at once see every event), or only on connect() (false). */
  autoConnect?: boolean;
  /** Ms to wait for the close that follows an error envelope before establishment (1000). */
  errorCloseGrace?: number;
  /** Paces send() and the queue flush; fed by the server's rate_limit_status. */
  rateLimiter?: ConnectionRateLimiter | null;
  /** The rate limiter's key (default: connection.established's connection_type). */
  channelType?: ConnectionType | (string & {}) | null;
  /** WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor | null;
  /** Injectable for tests. */
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => TimerHandle;
  clearTimeout?: (handle: TimerHandle) => void;
  now?: () => number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
  /** The error envelope that explained the close, if any. */
  error: WebSocketError | null;
}

export interface ReconnectingInfo {
  attempt: number;
  /** Ms until the attempt. */
  delay: number;
  /** The close code that caused it. */
  code: number;
}

/** WebSocketConnection's events and their listener arguments. */
export interface WebSocketConnectionEvents {
  open: [];
  message: [message: ServerMessage];
  established: [message: ConnectionEstablished];
  error: [error: WebSocketError];
  close: [info: CloseInfo];
  reconnecting: [info: ReconnectingInfo];
  reconnected: [message: ConnectionEstablished];
  stateChange: [state: ConnectionState, previous: ConnectionState];
  /** The text of every frame written to the socket (the token, pings and pongs included). */
  frameSent: [text: string];
  /** Every frame's data as the socket delivered it, before it is parsed. */
  frameReceived: [data: unknown];
}

export type SendResult = "sent" | "queued" | "dropped";

/** One WebSocket to a TripSage endpoint, kept alive (reconnect with full-jitter backoff, resume
 * from lastSeq, heartbeat, send queue). */
export declare class WebSocketConnection extends EventEmitter<WebSocketConnectionEvents> {
  constructor(options: WebSocketConnectionOptions);
  url: string;
  token: string | null;
  reconnectAttempts: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  reconnectDelay: number;
  maxReconnectDelay: number;
  maxQueueSize: number;
  autoConnect: boolean;
  errorCloseGrace: number;
  rateLimiter: ConnectionRateLimiter | null;
  channelType: string | null;
  state: ConnectionState;
  /** The last connection.established message. */
  established: ConnectionEstablished | null;
  /** Highest `seq` seen on this stream (null before any); assign null to reconnect without resuming. */
  get lastSeq(): number | null;
  set lastSeq(value: number | string | null | undefined);
  /** Messages waiting for the connection. */
  get queuedCount(): number;
  get isConnected(): boolean;
  /** Opens the socket if not open or opening (the same promise while opening); resolves once it
   * is open and `{"token"}` (and `resume`, if any) has been sent; rejects with a WebSocketError
   * when this attempt fails before that. */
  connect(): Promise<void>;
  /** Resolves with the connection.established of the current socket (at once when connected),
   * or of the next one when none is opening; rejects with a WebSocketError when that socket
   * fails before establishment (refused, closed, replaced) or on disconnect(). */
  whenEstablished(): Promise<ConnectionEstablished>;
  /** Replace the socket now, resuming from lastSeq; resolves as connect() does. */
  reconnect(): Promise<void>;
  /** Close (1000 by default) and stop reconnecting; queued messages are dropped. */
  disconnect(code?: number, reason?: string): void;
  /** JSON-encode and send once the token is on the wire and nothing is queued; else queue until
   * established. */
  send(message: unknown): SendResult;
  /** Drop the queued messages (returns them, parsed). */
  clearQueue(): unknown[];
  /** Use a new access token (auth.refresh on an established socket). */
  setToken(token: string | null): void;
  goOffline(): void;
  goOnline(): void;
}
