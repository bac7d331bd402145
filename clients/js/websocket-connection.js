// TripSage Realtime: the WebSocket connection (docs/client.md, protocol: docs/protocol.md).
// Plain ES module, no dependencies, no build step.

/** WebSocket readyState values (injected fakes may lack the constructor's statics). */
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

/** The connection's states, with the seed's `ConnectionState` names: what `state` holds and
 * `stateChange` (the connection's and the lifecycle manager's) emits. */
export const ConnectionState = Object.freeze({
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
});

/** Close codes the server uses (docs/protocol.md, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006, // never sent on the wire: the socket dropped without a close frame
  MESSAGE_TOO_BIG: 1009,
  SERVER_FAULT: 4011, // 1011 is daphne's own, when an application crashes: reconnect too
  TRY_AGAIN_LATER: 4013, // the server is busy opening other sockets: come back after retry_after
  AUTHENTICATION_FAILED: 4001,
  AUTHORIZATION_FAILED: 4003,
  HEARTBEAT_TIMEOUT: 4008,
  SLOW_CONSUMER: 4009,
  RATE_LIMITED: 4029,
});

/** Closes after which the connection does not reconnect by itself. */
const NO_RECONNECT = new Set([
  CloseCode.NORMAL,
  CloseCode.AUTHENTICATION_FAILED,
  CloseCode.AUTHORIZATION_FAILED,
]);

/** The error code a bare close stands for when no error envelope explained it. */
function codeForClose(closeCode) {
  switch (closeCode) {
    case CloseCode.AUTHENTICATION_FAILED:
      return "AUTHENTICATION_FAILED";
    case CloseCode.AUTHORIZATION_FAILED:
      return "AUTHORIZATION_FAILED";
    case CloseCode.RATE_LIMITED:
      return "RATE_LIMIT_EXCEEDED";
    case CloseCode.SERVER_FAULT:
    case CloseCode.TRY_AGAIN_LATER:
      return "SERVER_ERROR";
    case CloseCode.HEARTBEAT_TIMEOUT:
    case CloseCode.SLOW_CONSUMER:
      return "NETWORK_ERROR";
    default:
      return "CONNECTION_FAILED";
  }
}

/** A tiny event emitter: on/once/off/emit. `on` returns an unsubscribe function. A listener
 * that throws is reported (reportError or console.error) and does not stop the others. */
export class EventEmitter {
  constructor() {
    this._listeners = new Map();
  }

  on(event, listener) {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    let list = this._listeners.get(event);
    if (!list) this._listeners.set(event, (list = []));
    list.push(listener);
    return () => this.off(event, listener);
  }

  once(event, listener) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      listener(...args);
    };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  off(event, listener) {
    const list = this._listeners.get(event);
    if (!list) return this;
    const index = list.findIndex((l) => l === listener || l.listener === listener);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this._listeners.delete(event);
    return this;
  }

  removeAllListeners(event) {
    if (event === undefined) this._listeners.clear();
    else this._listeners.delete(event);
    return this;
  }

  listenerCount(event) {
    return this._listeners.get(event)?.length ?? 0;
  }

  emit(event, ...args) {
    const list = this._listeners.get(event);
    if (!list) return false;
    for (const listener of [...list]) {
      try {
        listener(...args);
      } catch (error) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
        else if (typeof console !== "undefined") console.error(error);
      }
    }
    return true;
  }
}

/** An Error from the server's error envelope or from the connection itself.
 * `code` is the seed's error code (AUTHENTICATION_FAILED, ...), `details` the envelope's details,
 * `closeCode` the WebSocket close code when the socket closed because of it, `requestId` the
 * envelope's request_id, `envelope` the whole server message. */
export class WebSocketError extends Error {
  constructor(message, { code = "UNKNOWN_ERROR", details = {}, closeCode = null, requestId = null, envelope = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "WebSocketError";
    this.code = code;
    this.details = details ?? {};
    this.closeCode = closeCode;
    this.requestId = requestId;
    this.envelope = envelope;
  }

  static fromEnvelope(envelope, closeCode = null) {
    const error = envelope?.error ?? {};
    return new WebSocketError(error.message || error.code || "Server error", {
      code: error.code || "UNKNOWN_ERROR",
      details: error.details ?? {},
      closeCode,
      requestId: envelope?.request_id ?? null,
      envelope,
    });
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Failures are also emitted as `error` events: a caller that ignores the promise must not
  // get an "unhandled rejection" for them. A caller that awaits it still sees the rejection.
  promise.catch(() => {});
  return { promise, resolve, reject, settled: false };
}

/** Ms to wait before the next counted message: a WebSocketRateLimiter's waitMs; for a limiter
 * without it (the seed's class), its getTimeUntilNextMessage (window − age of its oldest
 * message), which waits longer than needed but never too little. */
function rateLimiterWait(limiter, type) {
  return typeof limiter.waitMs === "function" ? limiter.waitMs(type) : limiter.getTimeUntilNextMessage(type);
}

/**
 * One WebSocket to a TripSage endpoint, kept alive.
 *
 * Options: url, token, reconnectAttempts (3; Infinity allowed; 0 never reconnects),
 * heartbeatInterval (ms, 30000; 0 disables the client's pings), heartbeatTimeout (ms of silence
 * after which the socket is considered dead and replaced; default 2 * heartbeatInterval + 10000;
 * 0 disables), reconnectDelay (base backoff, 1000 ms), maxReconnectDelay (30000 ms),
 * maxQueueSize (1000), autoConnect (true: the constructor opens the socket, see below),
 * errorCloseGrace (ms to wait for the close that follows an error envelope before
 * establishment, 1000), rateLimiter (a WebSocketRateLimiter:
 * send() and the queue flush are paced by it, and the server's rate_limit_status and
 * RATE_LIMIT_EXCEEDED feed it), channelType (its key; default: the connection_type of
 * connection.established), WebSocket (constructor, default globalThis.WebSocket), random,
 * setTimeout, clearTimeout, now (injectable for tests).
 *
 * Opening: with autoConnect (the default) the socket opens right after the constructor returns
 * (in a microtask, so listeners attached at once see every event); connect() before then opens
 * it at once, and connect() while it is opening returns the same promise. The first frame is
 * `{"token": ...}`, then `resume` (when a seq is known); connect() resolves once both are on the
 * wire, and whenEstablished() once the server has answered with connection.established.
 *
 * Reconnecting: attempt n waits random() * min(maxReconnectDelay, reconnectDelay * 2^(n-1))
 * ("full jitter"), and at least the server's hint when it refused the socket: after 4029,
 * retry_after; after 4013 (overloaded) or any refusal while opening that carries
 * details.retry_after, retry_after * (1 + random()), so a refused crowd does not return
 * together. A 4013 spends no attempt: the server is up and asked to be tried again later.
 *
 * Events: open, message (every parsed server message), established (connection.established),
 * error (WebSocketError), close ({code, reason, wasClean, error}), reconnecting ({attempt, delay,
 * code}), reconnected (connection.established), stateChange (state, previous), frameSent (the
 * text of every frame written to the socket) and frameReceived (every frame's data, before it
 * is parsed): what a WebSocketMetricsCollector counts.
 */
export class WebSocketConnection extends EventEmitter {
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError("WebSocketConnection needs a url");
    this.url = options.url;
    this.token = options.token ?? null;
    this.reconnectAttempts = options.reconnectAttempts ?? 3;
    this.heartbeatInterval = options.heartbeatInterval ?? 30000;
    this.heartbeatTimeout =
      options.heartbeatTimeout ?? (this.heartbeatInterval > 0 ? 2 * this.heartbeatInterval + 10000 : 0);
    this.reconnectDelay = options.reconnectDelay ?? 1000;
    this.maxReconnectDelay = options.maxReconnectDelay ?? 30000;
    this.maxQueueSize = options.maxQueueSize ?? 1000;
    this.autoConnect = options.autoConnect ?? true;
    this.errorCloseGrace = options.errorCloseGrace ?? 1000;
    this.rateLimiter = options.rateLimiter ?? null;
    this._refreshes = 0; // auth.refresh ids
    this.channelType = options.channelType ?? null;

    this._WebSocket = options.WebSocket ?? null;
    this._random = options.random ?? Math.random;
    this._setTimeout = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = options.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this._now = options.now ?? (() => Date.now());

    this.state = "disconnected";
    this.established = null; // the last connection.established message
    this._ws = null;
    this._socket = null; // per-socket bookkeeping, see _openSocket
    this._queue = []; // JSON strings waiting for an established socket
    this._lastSeq = null;
    this._attempts = 0; // reconnect attempts since the last establishment
    this._deferred = 0; // of those, the ones after a 4013: they spend none of reconnectAttempts
    this._everEstablished = false;
    this._stopped = null; // why we stay down: "manual" | "terminal" | "gave_up" | null
    this._paused = false; // offline: wait for goOnline() instead of a backoff timer
    this._reconnectTimer = null;
    this._heartbeatTimer = null;
    this._flushTimer = null;
    this._nextEstablished = null; // whenEstablished() of a socket not opened yet
    this._autoConnectPending = false;
    if (this.autoConnect) {
      // Once the constructor's caller has attached its listeners (they see the first
      // stateChange): a promise, not a timer, so fake timers in tests do not hold it back.
      this._autoConnectPending = true;
      Promise.resolve().then(() => {
        if (!this._autoConnectPending) return;
        this._autoConnectPending = false;
        this.connect();
      });
    }
  }

  // -- public API ---------------------------------------------------------------------------

  /** Highest `seq` seen on this stream (null before any). Sent as `resume.last_seq` after a
   * reconnect. Assign null to reconnect without resuming. */
  get lastSeq() {
    return this._lastSeq;
  }

  set lastSeq(value) {
    this._lastSeq = value == null ? null : Number(value);
  }

  /** Messages waiting for the connection. */
  get queuedCount() {
    return this._queue.length;
  }

  get isConnected() {
    return this.state === "connected";
  }

  /**
   * Open the socket (if not open or opening) and resolve (with nothing) once it is open and
   * `{"token": ...}` (and a `resume`, if any) has been sent. Rejects with a WebSocketError
   * (`code`, `details`, `closeCode`) when this attempt fails before that; automatic
   * reconnection may still follow (watch `reconnecting`/`reconnected`). Whether the server
   * accepted the token: whenEstablished(), or the `established` and `error` events.
   */
  connect() {
    this._autoConnectPending = false;
    if (this.state === "connected") return Promise.resolve();
    this._stopped = null;
    this._paused = false;
    if (this._socket && !this._socket.deferred.settled) return this._socket.opened.promise;
    this._clearReconnectTimer();
    const mode = this.state === "reconnecting" ? "reconnecting" : "connecting";
    return this._openSocket(mode);
  }

  /**
   * Resolves with the `connection.established` message of the current socket (at once when
   * connected), or of the next one when none is opening. Rejects with a WebSocketError when
   * that socket fails before the server established it (refused: 4001, 4003, 4013, 4029...;
   * closed; replaced by reconnect()), or on disconnect().
   */
  whenEstablished() {
    if (this.state === "connected" && this.established) return Promise.resolve(this.established);
    const socket = this._socket;
    if (socket && !socket.deferred.settled) return socket.deferred.promise;
    this._nextEstablished ??= deferred();
    return this._nextEstablished.promise;
  }

  /** Replace the socket now (closing the current one), resuming from `lastSeq`. Returns what
   * connect() returns for the new socket. */
  reconnect() {
    this._autoConnectPending = false;
    this._stopped = null;
    this._paused = false;
    this._resetAttempts();
    this._clearReconnectTimer();
    const mode = this.state === "disconnected" || !this._everEstablished ? "connecting" : "reconnecting";
    if (this._ws) this._abandonSocket(4000, "client reconnect", { notify: false });
    return this._openSocket(mode);
  }

  /** Close with 1000 and stop reconnecting. Queued messages are dropped. */
  disconnect(code = CloseCode.NORMAL, reason = "client disconnect") {
    this._autoConnectPending = false;
    this._stopped = "manual";
    this._paused = false;
    this._clearReconnectTimer();
    this._queue = [];
    const socket = this._socket;
    const ws = this._ws;
    if (ws) this._detach(ws, code, reason);
    if (socket && !socket.deferred.settled) {
      this._settle(socket, "reject", new WebSocketError("Disconnected before the connection was established", { code: "CONNECTION_CLOSED", closeCode: code }));
    }
    if (this._nextEstablished) {
      this._nextEstablished.reject(new WebSocketError("Disconnected before the connection was established", { code: "CONNECTION_CLOSED", closeCode: code }));
      this._nextEstablished = null;
    }
    this._setState("disconnected");
    if (ws) this.emit("close", { code, reason, wasClean: true, error: null });
  }

  /**
   * Send a message (JSON-encoded). Once the socket is open and the token is on the wire, it
   * goes straight to the socket ("sent"). Before that (no socket, opening, between sockets),
   * and while older messages wait, it is queued (at most maxQueueSize) and sent, in order,
   * right after the next `connection.established` (after the token and the `resume`). Returns
   * "sent", "queued" or "dropped" (queue full; an `error` event with code QUEUE_FULL).
   */
  send(message) {
    const text = JSON.stringify(message);
    const socket = this._socket;
    // A socket can say it is open before its open event has come: the token goes first.
    if (socket && !socket.tokenSent && socket.ws === this._ws && this._socketOpen()) this._handleOpen(socket);
    if (socket?.tokenSent && socket.ws === this._ws && this._socketOpen() && this._queue.length === 0 && this._mayCount()) {
      this._ws.send(text);
      this.emit("frameSent", text);
      return "sent";
    }
    if (this._queue.length >= this.maxQueueSize) {
      this.emit("error", new WebSocketError(`Send queue full (${this.maxQueueSize} messages); message dropped`, { code: "QUEUE_FULL", details: { message } }));
      return "dropped";
    }
    this._queue.push(text);
    if (this.state === "connected") this._scheduleFlush();
    return "queued";
  }

  /** Drop the queued messages (returns them, parsed). */
  clearQueue() {
    const queued = this._queue.map((text) => JSON.parse(text));
    this._queue = [];
    return queued;
  }

  /** Use a new access token: sent as `auth.refresh` on an established socket, and as the first
   * message of every later socket. */
  setToken(token) {
    this.token = token;
    if (this.state === "connected" && this._socket?.established && this._socketOpen()) {
      this._sendRefresh(this._socket, token);
    }
  }

  /** `auth.refresh` with an id, so that a refusal (RATE_LIMIT_EXCEEDED, `limit_type`
   * "auth.refresh") is known for one: the connection sends the current token again after the
   * refusal's `retry_after` (docs/protocol.md, "Rate limits"). */
  _sendRefresh(socket, token) {
    if (socket.refreshTimer !== null) {
      this._clearTimeout(socket.refreshTimer);
      socket.refreshTimer = null;
    }
    this._refreshes += 1;
    socket.refreshId = `auth-refresh-${this._refreshes}`;
    socket.sentToken = token;
    this._sendRaw({ type: "auth.refresh", id: socket.refreshId, token });
  }

  _refreshRefused(socket, details) {
    const seconds = Number(details?.retry_after);
    const wait = Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds * 1000) : 60000; // the seed's `|| 60`
    if (socket.refreshTimer !== null) this._clearTimeout(socket.refreshTimer);
    socket.refreshTimer = this._setTimeout(() => {
      socket.refreshTimer = null;
      if (this._socket === socket && socket.established && this._socketOpen() && this.token != null) {
        this._sendRefresh(socket, this.token);
      }
    }, wait);
  }

  /** The browser went offline: drop the socket and wait for goOnline() (no backoff timers
   * burning attempts meanwhile). No effect on a connection that is down for good. */
  goOffline() {
    if (this.state === "disconnected") return;
    this._paused = true;
    this._clearReconnectTimer();
    if (this._ws) {
      this._abandonSocket(4000, "offline", { code: CloseCode.ABNORMAL });
    } else {
      this._setState("reconnecting");
    }
  }

  /** The browser is back online: reconnect at once (attempts start again). */
  goOnline() {
    if (this._stopped === "manual" || this._stopped === "terminal") return;
    if (this.state === "disconnected" && !(this._stopped === "gave_up" && this._everEstablished)) {
      return; // never started (or never got through): the app decides when to connect()
    }
    const wasDown = this._paused || this.state !== "connected";
    this._paused = false;
    if (!wasDown) return;
    if (this._socket && !this._socket.deferred.settled) return; // already opening
    this._stopped = null;
    this._resetAttempts();
    this._clearReconnectTimer();
    this._openSocket(this._everEstablished ? "reconnecting" : "connecting");
  }

  // -- sockets ------------------------------------------------------------------------------

  _openSocket(mode) {
    const Ctor = this._WebSocket ?? globalThis.WebSocket;
    // deferred: whenEstablished() (connection.established); opened: connect() (token sent).
    const socket = { ws: null, deferred: this._nextEstablished ?? deferred(), opened: deferred(), tokenSent: false, established: false, errorReported: false, envelopeError: null, pendingError: null, graceTimer: null, sentToken: null, refreshId: null, refreshTimer: null, reconnect: mode === "reconnecting" };
    this._nextEstablished = null;
    if (this._ws) this._detach(this._ws, 4000, "replaced");
    this._socket = socket;
    this._setState(mode);
    if (typeof Ctor !== "function") {
      const error = new WebSocketError("No WebSocket implementation (pass options.WebSocket)", { code: "CONNECTION_FAILED" });
      this._failAttempt(socket, error);
      this._stopped = "terminal";
      this._setState("disconnected");
      return socket.opened.promise;
    }
    let ws;
    try {
      ws = new Ctor(this.url);
    } catch (cause) {
      // A bad URL (SyntaxError): retrying cannot help.
      const error = new WebSocketError(cause?.message || "Cannot open the WebSocket", { code: "CONNECTION_FAILED", cause });
      this._failAttempt(socket, error);
      this._stopped = "terminal";
      this._setState("disconnected");
      return socket.opened.promise;
    }
    socket.ws = ws;
    this._ws = ws;
    ws.onopen = (event) => {
      if (this._ws === ws) this._handleOpen(socket, event);
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._handleMessage(socket, event);
    };
    ws.onerror = (event) => {
      if (this._ws === ws) this._handleError(socket, event);
    };
    ws.onclose = (event) => {
      if (this._ws === ws) this._handleClose(socket, event ?? {});
    };
    return socket.opened.promise;
  }

  /** The socket is open (its open event, or send() saw readyState OPEN first): the token, then
   * the resume, then connect() resolves. The queue waits for connection.established. */
  _handleOpen(socket) {
    if (socket.tokenSent || socket.deferred.settled) return;
    socket.tokenSent = true;
    this._lastHeard = this._now();
    this.emit("open");
    // First message, exactly as the seed's client sends it.
    this._sendRaw({ token: this.token });
    socket.sentToken = this.token;
    if (this._lastSeq !== null) {
      // Before anything else, so no message of ours precedes it. The server handles frames one
      // at a time, after it has answered the token: the resume is read once established.
      this._mayCount(); // the server counts it; it goes first all the same
      this._sendRaw({ type: "resume", last_seq: this._lastSeq });
    }
    if (!socket.opened.settled) {
      socket.opened.settled = true;
      socket.opened.resolve();
    }
  }

  _handleMessage(socket, event) {
    this.emit("frameReceived", event?.data);
    let message;
    try {
      message = JSON.parse(typeof event?.data === "string" ? event.data : String(event?.data));
    } catch {
      return; // the server only sends JSON text frames
    }
    if (message === null || typeof message !== "object") return;
    this._lastHeard = this._now();
    if (message.type === "ping") {
      // Flow control: the pong acknowledges everything sent before the ping (4009 otherwise).
      this._sendRaw({ type: "pong", request_id: message.id ?? null });
    }
    this._trackSeq(message);
    if (this.rateLimiter && socket.established && (message.type === "rate_limit_status" || message.type === "error")) {
      const type = this._rateChannel();
      if (type) this.rateLimiter.updateFromServer(type, message);
    }
    this.emit("message", message);

    if (message.type === "connection.established") {
      this._handleEstablished(socket, message);
    } else if (message.type === "error") {
      const error = WebSocketError.fromEnvelope(message);
      socket.envelopeError = error;
      if (message.request_id != null && message.request_id === socket.refreshId && message.error?.code === "RATE_LIMIT_EXCEEDED") {
        this._refreshRefused(socket, message.error.details);
      }
      if (!socket.established && !socket.deferred.settled) {
        // The server follows a refusal with a close: reject then, with its code.
        socket.pendingError = error;
        if (socket.graceTimer === null) {
          socket.graceTimer = this._setTimeout(() => {
            socket.graceTimer = null;
            if (socket.pendingError && !socket.deferred.settled) this._failAttempt(socket, socket.pendingError);
          }, this.errorCloseGrace);
        }
      } else {
        this.emit("error", error);
      }
    }
  }

  _handleEstablished(socket, message) {
    if (socket.established) return; // the server sends it once per socket
    socket.established = true;
    this.established = message;
    const isReconnect = this._everEstablished;
    this._everEstablished = true;
    this._resetAttempts();
    this._stopped = null;
    this._setState("connected");
    this._startHeartbeat();
    if (socket.sentToken !== this.token && this.token != null) this._sendRefresh(socket, this.token);
    this._flushQueue();
    this._settle(socket, "resolve", message);
    this.emit("established", message);
    if (isReconnect) this.emit("reconnected", message);
  }

  _handleError(socket, event) {
    if (socket.established || socket.deferred.settled) return; // the close that follows says it all
    const message = event instanceof Error ? event.message : event?.message || "Connection failed";
    const error = new WebSocketError(message, { code: "CONNECTION_FAILED", cause: event });
    this._failAttempt(socket, error);
  }

  _handleClose(socket, event, { local = false } = {}) {
    const ws = socket.ws;
    if (!local) this._detach(ws, null);
    const code = event.code ?? CloseCode.ABNORMAL;
    const reason = event.reason ?? "";
    const error = socket.envelopeError;
    if (error && error.closeCode === null) error.closeCode = code;
    this.emit("close", { code, reason, wasClean: event.wasClean ?? code === CloseCode.NORMAL, error });

    if (!socket.deferred.settled) {
      const failure =
        socket.pendingError ??
        new WebSocketError(`Connection closed before it was established (code ${code})`, { code: codeForClose(code) });
      failure.closeCode = code;
      this._failAttempt(socket, failure);
    } else if (socket.established && !error && (code === CloseCode.AUTHENTICATION_FAILED || code === CloseCode.AUTHORIZATION_FAILED)) {
      this.emit("error", new WebSocketError(`Connection closed (code ${code})`, { code: codeForClose(code), closeCode: code }));
    }

    if (this._stopped === "manual") return;
    if (NO_RECONNECT.has(code)) {
      this._stopped = "terminal";
      this._setState("disconnected");
      return;
    }
    if (this._paused) {
      this._setState("reconnecting");
      return;
    }
    // A hint counts only from a refusal: the close it explains (4013, 4029), or an envelope
    // that came before the socket was established.
    const refusal = code === CloseCode.TRY_AGAIN_LATER || code === CloseCode.RATE_LIMITED || !socket.established;
    this._scheduleReconnect(code, refusal ? error : null);
  }

  _scheduleReconnect(code, error) {
    const deferred = code === CloseCode.TRY_AGAIN_LATER;
    const spent = this._attempts - this._deferred;
    if (!(this.reconnectAttempts > 0) || (!deferred && !(spent < this.reconnectAttempts))) {
      const attempts = this._attempts;
      this._stopped = "gave_up";
      this._setState("disconnected");
      if (this.reconnectAttempts > 0) {
        this.emit("error", new WebSocketError(`Gave up reconnecting after ${attempts} attempt(s)`, { code: "CONNECTION_FAILED", closeCode: code, details: { attempts } }));
      }
      return;
    }
    const attempt = ++this._attempts;
    if (deferred) this._deferred++;
    let delay = this._backoff(attempt);
    const hint = error?.details?.retry_after;
    const retryAfter = Number(hint); // seconds
    if (hint != null && Number.isFinite(retryAfter) && retryAfter > 0) {
      // 4029 names when a connect token is back; any other refusal's hint is jittered.
      const wait = code === CloseCode.RATE_LIMITED ? retryAfter * 1000 : retryAfter * 1000 * (1 + this._random());
      delay = Math.max(delay, Math.ceil(wait));
    }
    this._setState("reconnecting");
    this.emit("reconnecting", { attempt, delay, code });
    this._reconnectTimer = this._setTimeout(() => {
      this._reconnectTimer = null;
      if (this._stopped || this._paused) return;
      this._openSocket("reconnecting");
    }, delay);
  }

  /** Exponential backoff with "full jitter": anywhere between 0 and
   * min(maxReconnectDelay, reconnectDelay * 2^(attempt-1)), so that clients dropped together
   * spread over the whole window instead of its second half. */
  _backoff(attempt) {
    const ceiling = Math.min(this.maxReconnectDelay, this.reconnectDelay * 2 ** Math.max(0, attempt - 1));
    return Math.round(this._random() * ceiling);
  }

  _resetAttempts() {
    this._attempts = 0;
    this._deferred = 0;
  }

  /** Drop the current socket on our side and handle it as a close with `code`. */
  _abandonSocket(wireCode, reason, { code = CloseCode.ABNORMAL, notify = true } = {}) {
    const socket = this._socket;
    const ws = this._ws;
    if (!ws) return;
    this._detach(ws, wireCode, reason);
    if (!notify) {
      if (socket && !socket.deferred.settled) {
        this._settle(socket, "reject", new WebSocketError("Connection replaced", { code: "CONNECTION_CLOSED", closeCode: code }));
      }
      return;
    }
    this._handleClose(socket, { code, reason, wasClean: false }, { local: true });
  }

  /** Forget a socket: no more events from it; close it if it is still open. */
  _detach(ws, code, reason) {
    if (!ws) return;
    if (this._ws === ws) this._ws = null;
    const socket = this._socket;
    if (socket?.graceTimer != null) {
      this._clearTimeout(socket.graceTimer);
      socket.graceTimer = null;
    }
    this._stopHeartbeat();
    this._clearFlushTimer();
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    if (code != null && (ws.readyState === OPEN || ws.readyState === CONNECTING || ws.readyState === undefined)) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  _failAttempt(socket, error) {
    if (socket.deferred.settled) return;
    this._settle(socket, "reject", error);
    if (!socket.errorReported) {
      socket.errorReported = true;
      this.emit("error", error);
    }
  }

  _settle(socket, how, value) {
    if (socket.deferred.settled) return;
    socket.deferred.settled = true;
    if (socket.graceTimer != null) {
      this._clearTimeout(socket.graceTimer);
      socket.graceTimer = null;
    }
    socket.deferred[how](value);
    if (!socket.opened.settled) {
      // Failed (or established, which cannot come first) before the token went out.
      socket.opened.settled = true;
      socket.opened[how](how === "resolve" ? undefined : value);
    }
  }

  // -- helpers ------------------------------------------------------------------------------

  _socketOpen() {
    const ws = this._ws;
    return !!ws && (ws.readyState === OPEN || ws.readyState === undefined);
  }

  _sendRaw(message) {
    if (!this._socketOpen()) return false;
    const text = JSON.stringify(message);
    this._ws.send(text);
    this.emit("frameSent", text);
    return true;
  }

  _flushQueue() {
    this._clearFlushTimer();
    while (this._queue.length > 0 && this._socketOpen()) {
      if (!this._mayCount()) {
        this._scheduleFlush();
        return;
      }
      const text = this._queue[0];
      this._ws.send(text);
      this.emit("frameSent", text);
      this._queue.shift();
    }
  }

  /** Whether the rate limiter (if any) lets one more counted message go now (and counts it). */
  _mayCount() {
    const type = this._rateChannel();
    return !this.rateLimiter || !type || this.rateLimiter.canSendMessage(type);
  }

  _rateChannel() {
    return this.channelType ?? this.established?.connection_type ?? null;
  }

  /** Send the queue when the rate limiter allows (connected sockets only). */
  _scheduleFlush() {
    if (this._flushTimer !== null || this._queue.length === 0) return;
    const type = this._rateChannel();
    const wait = this.rateLimiter && type ? rateLimiterWait(this.rateLimiter, type) : 0;
    this._flushTimer = this._setTimeout(() => {
      this._flushTimer = null;
      if (this.state === "connected") this._flushQueue();
    }, Math.max(1, wait));
  }

  _clearFlushTimer() {
    if (this._flushTimer !== null) {
      this._clearTimeout(this._flushTimer);
      this._flushTimer = null;
    }
  }

  /** Logged events (and snapshots, histories, resume.complete) carry `seq`; keep the highest.
   * An `ack`'s seq is not counted: its event follows it and must not be skipped by a resume.
   * `resync.required` restarts from its snapshot. */
  _trackSeq(message) {
    if (message.type === "resync.required") {
      const seq = message.snapshot?.seq ?? message.snapshot?.trip?.seq ?? message.seq;
      if (Number.isInteger(seq)) this._lastSeq = seq;
      return;
    }
    if (message.type === "ack") return;
    if (Number.isInteger(message.seq) && (this._lastSeq === null || message.seq > this._lastSeq)) {
      this._lastSeq = message.seq;
    }
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    if (!(this.heartbeatInterval > 0) || !Number.isFinite(this.heartbeatInterval)) return;
    const tick = () => {
      this._heartbeatTimer = null;
      if (!this._socketOpen() || this.state !== "connected") return;
      if (this.heartbeatTimeout > 0 && this._now() - this._lastHeard > this.heartbeatTimeout) {
        // Nothing heard (not even the server's pings): the socket is dead without knowing it.
        this._abandonSocket(4000, "heartbeat timeout", { code: CloseCode.HEARTBEAT_TIMEOUT });
        return;
      }
      this._sendRaw({ type: "ping" });
      this._heartbeatTimer = this._setTimeout(tick, this.heartbeatInterval);
    };
    this._heartbeatTimer = this._setTimeout(tick, this.heartbeatInterval);
  }

  _stopHeartbeat() {
    if (this._heartbeatTimer !== null) {
      this._clearTimeout(this._heartbeatTimer);
      this._heartbeatTimer = null;
    }
  }

  _clearReconnectTimer() {
    if (this._reconnectTimer !== null) {
      this._clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
    }
  }

  _setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.emit("stateChange", state, previous);
  }
}
