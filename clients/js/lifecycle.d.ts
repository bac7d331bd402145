// Type declarations for lifecycle.js.
import {
  type CloseInfo,
  type ConnectionState,
  EventEmitter,
  type ServerMessage,
  type WebSocketConnectionOptions,
  WebSocketConnection,
  type WebSocketConstructor,
  type WebSocketError,
} from "./websocket-connection.js";

/** Where `online`/`offline` come from: a browser window, or any EventTarget. */
export interface OnlineEventTarget {
  addEventListener(type: "online" | "offline", listener: () => void): void;
  removeEventListener(type: "online" | "offline", listener: () => void): void;
  navigator?: { onLine?: boolean };
}

export interface ConnectionLifecycleOptions {
  /** Default: globalThis when it has addEventListener; null listens to nothing. */
  window?: OnlineEventTarget | null;
}

export interface ConnectionLifecycleEvents {
  stateChange: [state: ConnectionState, previous: ConnectionState];
  online: [];
  offline: [];
}

/** Follows a connection's state (stateChange) and the browser's online/offline events. */
export declare class ConnectionLifecycleManager extends EventEmitter<ConnectionLifecycleEvents> {
  constructor(connection: WebSocketConnection, options?: ConnectionLifecycleOptions);
  connection: WebSocketConnection;
  state: ConnectionState;
  online: boolean;
  /** Stop listening (to the connection and the window); the connection is left as it is. */
  destroy(): void;
}

/** The options the React hook and the Vue composable take (the seed's UseWebSocketOptions,
 * plus WebSocket, window and connectionOptions). */
export interface UseWebSocketOptions {
  url: string;
  token: string | null;
  /** 3 by default; 0 never reconnects. */
  reconnectAttempts?: number;
  /** Ms, 30000 by default. */
  heartbeatInterval?: number;
  onMessage?: (message: ServerMessage) => void;
  onError?: (error: WebSocketError) => void;
  onConnect?: () => void;
  onDisconnect?: () => void;
  /** WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Where online/offline come from (see ConnectionLifecycleOptions). */
  window?: OnlineEventTarget | null;
  /** Any other WebSocketConnection option (url, token, reconnectAttempts and heartbeatInterval
   * come from the fields above). */
  connectionOptions?: Partial<WebSocketConnectionOptions>;
}

export interface ManagedConnectionHandlers {
  onState(state: ConnectionState): void;
  onMessage(message: ServerMessage): void;
  onError(error: WebSocketError): void;
  onConnect(): void;
  onDisconnect(info: CloseInfo): void;
}

/** The hooks' shared setup: a connection and its lifecycle manager, wired to the handlers. */
export declare function createManagedConnection(
  options: UseWebSocketOptions,
  handlers: ManagedConnectionHandlers,
): { connection: WebSocketConnection; lifecycle: ConnectionLifecycleManager };
