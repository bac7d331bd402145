// TripSage Realtime: edits and chat messages kept in browser storage until the server answers
// them, across disconnects and page reloads (docs/client.md, "OfflineOutbox").
import { EventEmitter } from "./websocket-connection.js";
import { newUpdateId, tripUpdateMessage } from "./optimistic.js";

export const OUTBOX_STORAGE_PREFIX = "tripsage.outbox.v1";

/** Answers that settle an entry: the server acted on it (or had already: `duplicate`). */
const SETTLING_ACKS = new Set(["applied", "merged", "conflict", "duplicate", "already_resolved", "posted"]);
/** Refusals after which the same message may succeed later: kept, and sent again. */
const RETRYABLE_CODES = new Set(["RATE_LIMIT_EXCEEDED", "SERVER_ERROR"]);
/** What ends a stream's catch-up: with a `resume` sent, its answer; without, the snapshot. */
const RESUME_ANSWERS = new Set(["resume.complete", "resync.required"]);
const SNAPSHOTS = new Set(["trip.snapshot", "chat.history"]);
/** Which entries go over which stream. */
const STREAM_KIND = { trip: "edit", chat: "message" };

/** A Storage-shaped store held in a Map (Node, tests, or a browser without localStorage). */
export function memoryStorage() {
  const map = new Map();
  return {
    getItem: (key) => (map.has(key) ? map.get(key) : null),
    setItem: (key, value) => void map.set(key, String(value)),
    removeItem: (key) => void map.delete(key),
    clear: () => map.clear(),
    key: (index) => [...map.keys()][index] ?? null,
    get length() {
      return map.size;
    },
  };
}

function defaultStorage() {
  try {
    if (globalThis.localStorage) return globalThis.localStorage; // throws where storage is disabled
  } catch {
    /* fall through */
  }
  return memoryStorage();
}

/** The message an entry is sent as. */
export function outboxMessage(entry) {
  if (entry.kind === "edit") {
    return tripUpdateMessage({ id: entry.update_id, field: entry.field, value: entry.value, baseVersion: entry.base_version });
  }
  return { type: "chat.send", id: entry.client_id, text: entry.text, client_id: entry.client_id };
}

/**
 * Trip edits (`trip.update`) and chat messages (`chat.send`) of one user on one trip, kept in
 * `storage` (localStorage by default) under `tripsage.outbox.v1.<userId>.<tripId>` until the
 * server acknowledges them, so that neither a dropped socket nor a reload loses them and another
 * user of the same browser never sends them.
 *
 * new OfflineOutbox({userId, tripId, storage?, setTimeout?, clearTimeout?, now?})
 * - addEdit({field, value, baseVersion, updateId?}) / addMessage({text, clientId?}): store, and
 *   send at once when the stream is ready. A second edit of a field whose first was never sent
 *   replaces its value (one update, the first's update_id and base_version).
 * - attach(connection, "trip" | "chat"): the stream's entries are sent, in the order made, with
 *   their original update_id / client_id / base_version, once the connection is established
 *   and has caught up: after the answer to its `resume` (resume.complete or resync.required),
 *   or, when it sent none, after the snapshot (trip.snapshot, chat.history). The connection's
 *   acks settle them; an ack-less disconnect keeps them for the next connection.
 * Events: change ({total, edits, messages, waiting}), sent (entry), settled ({entry, answer,
 * status}), refused ({entry, error}), error (a storage failure: entries are then kept in memory).
 */
export class OfflineOutbox extends EventEmitter {
  constructor(options = {}) {
    super();
    if (options.userId == null || options.tripId == null) throw new TypeError("OfflineOutbox needs a userId and a tripId");
    this.userId = options.userId;
    this.tripId = options.tripId;
    this.storage = options.storage ?? defaultStorage();
    this.key = `${OUTBOX_STORAGE_PREFIX}.${this.userId}.${this.tripId}`;
    this._setTimeout = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = options.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this._now = options.now ?? (() => Date.now());
    this._memory = null; // entries, when storage refused them
    this._streams = new Map(); // "trip" | "chat" -> {connection, ready, awaitResume, sentIds, retryTimer, off}
  }

  // -- what is kept -------------------------------------------------------------------------

  /** Every entry not yet acknowledged, in the order made (copies). */
  get entries() {
    return this._read().map((entry) => ({ ...entry }));
  }

  /** How many entries wait for an acknowledgement. */
  get size() {
    return this._read().length;
  }

  /** Entries not sent on a live, caught-up connection (what a page shows as "waiting"). */
  get waitingCount() {
    return this.waitingEntries().length;
  }

  /** Those entries (copies), in the order made. */
  waitingEntries() {
    return this._read().filter((entry) => !this._sentNow(entry));
  }

  /** {total, edits, messages, waiting}. */
  counts() {
    const entries = this._read();
    return {
      total: entries.length,
      edits: entries.filter((entry) => entry.kind === "edit").length,
      messages: entries.filter((entry) => entry.kind === "message").length,
      waiting: entries.filter((entry) => !this._sentNow(entry)).length,
    };
  }

  /** Keep a `trip.update`; returns the entry (the earlier one, when it was coalesced into). */
  addEdit({ field, value, baseVersion, updateId } = {}) {
    if (typeof field !== "string" || !field) throw new TypeError("an edit needs a field");
    if (!Number.isInteger(baseVersion)) throw new TypeError("an edit needs an integer baseVersion");
    const entries = this._read();
    // Never sent: nobody saw it, so the later value simply replaces it (same update_id).
    const earlier = entries.findLast((entry) => entry.kind === "edit" && entry.field === field && !entry.sent);
    let entry;
    if (earlier && updateId == null) {
      earlier.value = value ?? null;
      earlier.updated_at = this._now();
      entry = earlier;
    } else {
      const id = updateId ?? newUpdateId();
      entry = { kind: "edit", id, update_id: id, field, value: value ?? null, base_version: baseVersion, created_at: this._now(), sent: false };
      entries.push(entry);
    }
    this._write(entries);
    this._changed();
    this._flush("trip");
    return { ...entry };
  }

  /** Keep a `chat.send`; returns the entry. */
  addMessage({ text, clientId } = {}) {
    if (typeof text !== "string" || !text) throw new TypeError("a chat message needs text");
    const entries = this._read();
    const id = clientId ?? newUpdateId();
    const entry = { kind: "message", id, client_id: id, text, created_at: this._now(), sent: false };
    entries.push(entry);
    this._write(entries);
    this._changed();
    this._flush("chat");
    return { ...entry };
  }

  /** Forget one entry (by update_id / client_id); true when there was one. */
  remove(id) {
    const entries = this._read();
    const index = entries.findIndex((entry) => entry.id === id);
    if (index < 0) return false;
    entries.splice(index, 1);
    this._write(entries);
    this._changed();
    return true;
  }

  /** Forget every entry (e.g. the user chose to discard them). */
  clear() {
    this._write([]);
    this._changed();
  }

  /** Storage changed elsewhere (another tab's `storage` event): send what is new, say so. */
  refresh() {
    this._changed();
    for (const stream of this._streams.keys()) this._flush(stream);
  }

  // -- sending ------------------------------------------------------------------------------

  /** Send `stream`'s entries over `connection` whenever it is established and caught up.
   * Attach before the connection is established, so that the first catch-up is seen: in the
   * turn that constructs it, or before connect() with autoConnect: false. Returns a detach
   * function. */
  attach(connection, stream) {
    if (!(stream in STREAM_KIND)) throw new TypeError('attach(connection, "trip" | "chat")');
    this.detach(stream);
    const state = { connection, ready: false, awaitResume: false, sentIds: new Set(), retryTimer: null, offs: [] };
    this._streams.set(stream, state);
    state.offs.push(
      connection.on("established", () => {
        // The connection sent its `resume` (when it knows a seq) with the token, before this event.
        state.ready = false;
        state.sentIds.clear();
        state.awaitResume = connection.lastSeq !== null && connection.lastSeq !== undefined;
      }),
      connection.on("message", (message) => {
        if (!state.ready && connection.state === "connected") {
          const caughtUp = state.awaitResume ? RESUME_ANSWERS.has(message.type) : SNAPSHOTS.has(message.type);
          if (caughtUp) {
            state.ready = true;
            this._changed();
            this._flush(stream);
            return;
          }
        }
        this.handleMessage(message, stream);
      }),
      connection.on("stateChange", (now) => {
        if (now === "connected") return;
        const wasSent = state.sentIds.size > 0 || state.ready;
        state.ready = false;
        state.sentIds.clear(); // not acknowledged: sent again on the next connection
        this._clearRetry(state);
        if (wasSent) this._changed();
      }),
    );
    if (connection.state === "connected") {
      state.ready = true; // attached late: the catch-up cannot be told apart any more
      this._flush(stream);
    }
    return () => this.detach(stream);
  }

  /** Stop sending over the stream's connection. */
  detach(stream) {
    const state = this._streams.get(stream);
    if (!state) return;
    for (const off of state.offs) off();
    this._clearRetry(state);
    this._streams.delete(stream);
  }

  /** An answer from the server: acks settle entries, `trip.updated` / `chat.message` naming one
   * settles it too (another tab sent it), an error envelope naming one refuses it (or, rate
   * limited or a fault of the server's, sends it again later). Returns the entry it concerned. */
  handleMessage(message, stream = null) {
    if (!message || typeof message !== "object") return undefined;
    let id = null;
    let status = null;
    if (message.type === "ack") {
      id = message.update_id ?? message.message?.client_id ?? message.request_id ?? null;
      status = message.status === "duplicate" ? message.original_status ?? "duplicate" : message.status;
      if (!SETTLING_ACKS.has(message.status)) return undefined;
    } else if (message.type === "trip.updated" && message.update_id) {
      id = message.update_id;
      status = message.source === "merge" ? "merged" : "applied";
    } else if (message.type === "chat.message" && message.message?.client_id) {
      id = message.message.client_id;
      status = "posted";
    } else if (message.type === "error") {
      return this._refused(message, stream);
    } else {
      return undefined;
    }
    const entry = this._read().find((candidate) => candidate.id === id);
    if (!entry) return undefined;
    this.remove(entry.id);
    for (const state of this._streams.values()) state.sentIds.delete(entry.id);
    this.emit("settled", { entry, answer: message, status });
    return entry;
  }

  _refused(envelope, stream) {
    const id = envelope.request_id ?? envelope.error?.details?.update_id ?? null;
    const entry = id == null ? undefined : this._read().find((candidate) => candidate.id === id);
    if (!entry) return undefined;
    const code = envelope.error?.code;
    const details = envelope.error?.details ?? {};
    if (RETRYABLE_CODES.has(code) && details.retryable !== false) {
      const state = stream ? this._streams.get(stream) : [...this._streams.values()].find((s) => s.sentIds.has(id));
      if (state) {
        state.sentIds.delete(id);
        this._changed();
        this._retryLater(state, stream ?? this._streamOf(entry), Number(details.retry_after));
      }
      return entry;
    }
    this.remove(entry.id);
    for (const state of this._streams.values()) state.sentIds.delete(entry.id);
    this.emit("refused", { entry, error: envelope });
    return entry;
  }

  _retryLater(state, stream, seconds) {
    if (state.retryTimer !== null) return;
    const delay = Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds * 1000) : 1000;
    state.retryTimer = this._setTimeout(() => {
      state.retryTimer = null;
      this._flush(stream);
    }, delay);
  }

  _clearRetry(state) {
    if (state.retryTimer !== null) {
      this._clearTimeout(state.retryTimer);
      state.retryTimer = null;
    }
  }

  _streamOf(entry) {
    return entry.kind === "edit" ? "trip" : "chat";
  }

  _sentNow(entry) {
    const state = this._streams.get(this._streamOf(entry));
    return !!state && state.ready && state.sentIds.has(entry.id);
  }

  /** Send the stream's entries not yet sent on its current connection, in order. */
  _flush(stream) {
    const state = this._streams.get(stream);
    if (!state || !state.ready || state.retryTimer !== null || state.connection.state !== "connected") return;
    const entries = this._read();
    const due = entries.filter((entry) => entry.kind === STREAM_KIND[stream] && !state.sentIds.has(entry.id));
    if (due.length === 0) return;
    for (const entry of due) entry.sent = true; // from now on it may have reached the server
    this._write(entries);
    for (const entry of due) {
      state.sentIds.add(entry.id);
      state.connection.send(outboxMessage(entry));
      this.emit("sent", { ...entry });
    }
    this._changed();
  }

  // -- storage ------------------------------------------------------------------------------

  _read() {
    if (this._memory) return this._memory.map((entry) => ({ ...entry }));
    try {
      const text = this.storage.getItem(this.key);
      if (!text) return [];
      const data = JSON.parse(text);
      return Array.isArray(data?.entries) ? data.entries.filter((entry) => entry && typeof entry.id === "string") : [];
    } catch {
      return []; // unreadable (corrupt or refused): nothing to send
    }
  }

  _write(entries) {
    if (this._memory) {
      this._memory = entries.map((entry) => ({ ...entry }));
      return;
    }
    try {
      if (entries.length === 0) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify({ entries }));
    } catch (error) {
      // Quota or disabled storage: keep them for this page's life at least.
      this._memory = entries.map((entry) => ({ ...entry }));
      this.emit("error", error);
    }
  }

  _changed() {
    this.emit("change", this.counts());
  }
}
