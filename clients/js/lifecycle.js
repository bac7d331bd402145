// TripSage Realtime: connection state for the UI, and the browser's online/offline events.
import { EventEmitter, WebSocketConnection } from "./websocket-connection.js";

/**
 * Follows a WebSocketConnection's state and emits `stateChange` (state, previous) with one of
 * "connecting", "connected", "reconnecting", "disconnected".
 *
 * Listens to `offline` and `online` on `options.window` (any EventTarget), or on globalThis when
 * it has addEventListener (a browser window); pass `window: null` to listen to nothing.
 * offline: the socket is dropped as an abnormal close and the state becomes "reconnecting"
 * (no backoff attempts are spent while offline); online: reconnect at once.
 */
export class ConnectionLifecycleManager extends EventEmitter {
  constructor(connection, options = {}) {
    super();
    this.connection = connection;
    this.state = connection.state ?? "disconnected";
    this.online = true;
    this._unsubscribe = connection.on("stateChange", (state) => this._setState(state));

    const target =
      "window" in options
        ? options.window
        : typeof globalThis.addEventListener === "function"
          ? globalThis
          : null;
    this._target = target ?? null;
    this._onOffline = () => {
      this.online = false;
      this.emit("offline");
      this.connection.goOffline();
    };
    this._onOnline = () => {
      this.online = true;
      this.emit("online");
      this.connection.goOnline();
    };
    if (this._target) {
      this._target.addEventListener("offline", this._onOffline);
      this._target.addEventListener("online", this._onOnline);
      if (this._target.navigator?.onLine === false) this.online = false;
    }
  }

  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("stateChange", state, previous);
  }

  /** Stop listening (to the connection and the window). The connection is left as it is. */
  destroy() {
    this._unsubscribe?.();
    this._unsubscribe = null;
    if (this._target) {
      this._target.removeEventListener("offline", this._onOffline);
      this._target.removeEventListener("online", this._onOnline);
      this._target = null;
    }
    this.removeAllListeners();
  }
}

/** Connection options a hook passes through besides url/token/reconnectAttempts/heartbeatInterval. */
function extraConnectionOptions(options) {
  const extra = { ...(options.connectionOptions ?? {}) };
  if (options.WebSocket !== undefined) extra.WebSocket = options.WebSocket;
  return extra;
}

/** The hooks' shared setup (react.js, vue.js): a connection and its lifecycle manager, wired to callbacks. */
export function createManagedConnection(options, handlers) {
  const connection = new WebSocketConnection({
    ...extraConnectionOptions(options),
    url: options.url,
    token: options.token,
    // `??`, not the seed's `||`: reconnectAttempts 0 means "never reconnect".
    reconnectAttempts: options.reconnectAttempts ?? 3,
    heartbeatInterval: options.heartbeatInterval ?? 30000,
  });
  const lifecycle = new ConnectionLifecycleManager(
    connection,
    "window" in options ? { window: options.window } : {},
  );
  lifecycle.on("stateChange", (state) => handlers.onState(state));
  connection.on("message", (message) => handlers.onMessage(message));
  connection.on("error", (error) => handlers.onError(error));
  connection.on("established", () => handlers.onConnect());
  connection.on("close", (event) => handlers.onDisconnect(event));
  // The hooks call connect() in this same turn: it opens the socket (autoConnect then has
  // nothing left to do), and the lifecycle manager sees the first stateChange.
  return { connection, lifecycle };
}
