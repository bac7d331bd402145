// TripSage Realtime: optimistic updates, confirmed or undone by the server's answers.
import { EventEmitter } from "./websocket-connection.js";

/** A UUID (v4) for an update_id or a client_id: crypto.randomUUID where there is one. */
export function newUpdateId() {
  if (typeof globalThis.crypto?.randomUUID === "function") return globalThis.crypto.randomUUID();
  // RFC 4122 version 4 layout from Math.random (non-secure contexts without randomUUID).
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

function sameValue(a, b) {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The trip field an update changes: `field`, else the single key of `data`. */
function fieldOf(update) {
  if (update.field !== undefined) return update.field;
  const keys = Object.keys(update.data ?? {});
  return keys.length === 1 ? keys[0] : undefined;
}

/**
 * Build a trip.update message from an optimistic update {id, field?, value?, data?,
 * baseVersion}: `update_id` and the message `id` are the update's id (so the ack and any error
 * envelope name it).
 */
export function tripUpdateMessage(update) {
  const field = fieldOf(update);
  if (field === undefined) throw new TypeError("a trip update changes one field: give `field` or a one-key `data`");
  const value = update.value !== undefined ? update.value : update.data?.[field];
  return {
    type: "trip.update",
    id: update.id,
    update_id: update.id,
    field,
    value,
    base_version: update.baseVersion ?? update.base_version ?? 0,
  };
}

/**
 * Keeps the updates shown before the server confirmed them (`pendingUpdates`, a Map by id).
 *
 * new OptimisticUpdateManager(conflictResolver?, {applyToUI, rollbackUI, onConflict})
 * - applyOptimisticUpdate(update): applyToUI(update) at once, then pending until answered.
 * - handleServerUpdate({resourceId, data}): confirms pending updates of that resource whose data
 *   the server now holds (the seed's path); a trip.updated naming the update's id also confirms.
 * - handleAck(ack): `applied`, `duplicate` (of an applied first attempt) confirm; `merged` (or a
 *   duplicate of a merged first attempt) confirms too, and the field's value is the ack's `value`
 *   (the server's three-way merge of the proposal with changes made since its base), not the
 *   proposal: `merged` event with {update, ack, value}; `conflict` (or a duplicate of a
 *   conflicted first attempt) emits `conflict` / calls onConflict with {update, ack, conflictId,
 *   serverValue}: the UI decides (keep, resolve, rollbackUI); an error envelope whose request_id
 *   (or details.update_id) names the update rolls it back.
 * - handleMessage(message): routes ack, error and trip.updated messages to the above.
 * Events: applied, confirmed, merged ({update, ack, value}), rolledBack ({update, error}),
 * conflict.
 */
export class OptimisticUpdateManager extends EventEmitter {
  constructor(conflictResolver = null, { applyToUI, rollbackUI, onConflict } = {}) {
    super();
    this.conflictResolver = conflictResolver;
    this._applyToUI = applyToUI;
    this._rollbackUI = rollbackUI;
    this._onConflict = onConflict;
    this.pendingUpdates = new Map();
  }

  /** Show the update in the UI (the `applyToUI` option). */
  applyToUI(update) {
    return this._applyToUI?.(update);
  }

  /** Undo the update in the UI (the `rollbackUI` option). */
  rollbackUI(update, reason) {
    return this._rollbackUI?.(update, reason);
  }

  async applyOptimisticUpdate(update) {
    if (update.id == null) update.id = newUpdateId();
    if (update.timestamp == null) update.timestamp = Date.now();
    if (update.serverConfirmed == null) update.serverConfirmed = false;
    this.pendingUpdates.set(update.id, update);
    await this.applyToUI(update);
    this.emit("applied", update);
    return update;
  }

  /** The seed's path: the server's state for a resource. Confirms every pending update of that
   * resource whose data matches; asks the conflict resolver about the others. */
  async handleServerUpdate(serverUpdate) {
    const { resourceId, data = {} } = serverUpdate ?? {};
    for (const update of [...this.pendingUpdates.values()]) {
      if (update.resourceId !== resourceId) continue;
      const keys = Object.keys(update.data ?? {});
      if (keys.length > 0 && keys.every((key) => key in data && sameValue(update.data[key], data[key]))) {
        this._confirm(update, serverUpdate);
      } else if (this.conflictResolver?.hasConflict?.(update, serverUpdate)) {
        const resolution = await this.conflictResolver.resolve?.(update, serverUpdate);
        this._conflict(update, serverUpdate, { resolution });
      }
    }
  }

  _find(id) {
    if (id == null) return undefined;
    const direct = this.pendingUpdates.get(id);
    if (direct) return direct;
    for (const update of this.pendingUpdates.values()) {
      if (update.requestId === id || update.updateId === id) return update;
    }
    return undefined;
  }

  /** An `ack` (or an error envelope refusing the update). Returns the update it settled. */
  handleAck(ack) {
    if (!ack) return undefined;
    if (ack.type === "error") return this.handleRefusal(ack);
    const update = this._find(ack.update_id) ?? this._find(ack.request_id);
    if (!update) return undefined;
    const status = ack.status === "duplicate" ? ack.original_status ?? "applied" : ack.status;
    if (status === "conflict") {
      this._conflict(update, ack, { conflictId: ack.conflict_id ?? null, serverValue: ack.value });
    } else if (status === "merged") {
      this._merged(update, ack);
    } else if (status === "applied" || status === "already_resolved" || status === "posted") {
      this._confirm(update, ack);
    }
    return update;
  }

  /** An error envelope: the update it names is refused and rolled back. */
  handleRefusal(envelope) {
    const update =
      this._find(envelope.request_id) ??
      this._find(envelope.error?.details?.update_id) ??
      this._find(envelope.update_id);
    if (!update) return undefined;
    this.pendingUpdates.delete(update.id);
    this.rollbackUI(update, envelope);
    this.emit("rolledBack", { update, error: envelope });
    return update;
  }

  /** Route a server message (ack, error, trip.updated). */
  handleMessage(message) {
    if (!message) return undefined;
    if (message.type === "ack" || message.type === "error") return this.handleAck(message);
    if (message.type === "trip.updated" && message.update_id) {
      const update = this._find(message.update_id);
      if (update && message.source === "merge") this._merged(update, message);
      else if (update) this._confirm(update, message);
      return update;
    }
    return undefined;
  }

  /** Undo every pending update (e.g. the session ended). */
  rollbackAll(reason) {
    for (const update of [...this.pendingUpdates.values()]) {
      this.pendingUpdates.delete(update.id);
      this.rollbackUI(update, reason);
      this.emit("rolledBack", { update, error: reason });
    }
  }

  _confirm(update, answer) {
    if (!this.pendingUpdates.has(update.id)) return;
    this.pendingUpdates.delete(update.id);
    update.serverConfirmed = true;
    this.emit("confirmed", update, answer);
  }

  /** Settled, with the server's merged text in force instead of the proposal (kept as
   * `proposedValue`): `merged` first, so that a `confirmed` listener finds the value replaced. */
  _merged(update, answer) {
    const field = fieldOf(update);
    update.proposedValue = update.value !== undefined ? update.value : update.data?.[field];
    update.value = answer.value;
    if (update.data && field !== undefined) update.data = { ...update.data, [field]: answer.value };
    this.emit("merged", { update, ack: answer, value: answer.value });
    this._confirm(update, answer);
  }

  _conflict(update, ack, extra) {
    this.pendingUpdates.delete(update.id);
    const conflict = { update, ack, ...extra };
    this._onConflict?.(conflict);
    this.emit("conflict", conflict);
  }
}
