import { describe, it, beforeEach } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection } from "../websocket-connection.js";
import { OUTBOX_STORAGE_PREFIX, OfflineOutbox, memoryStorage, outboxMessage } from "../outbox.js";
import { fakeOptions } from "./helpers.js";

const SNAPSHOT = { type: "trip.snapshot", seq: 12, trip: { id: 7, version: 5, seq: 12, fields: {}, field_versions: {} } };

/** What a fake socket sent, without the token, pings and pongs. */
const sentMessages = (ws) => ws.sent().filter((m) => !("token" in m) && m.type !== "pong" && m.type !== "ping");

describe("OfflineOutbox", () => {
  let storage;
  let factory;
  let clock;
  let connection;
  let outbox;

  const newOutbox = (extra = {}) =>
    new OfflineOutbox({ userId: 3, tripId: 7, storage, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now, ...extra });

  /** Connect and answer like the trip socket: established, then the snapshot. */
  async function establish(extra = {}) {
    const promise = connection.connect();
    const ws = factory.last();
    ws.establish({ connection_type: "trip_collaboration", user: { id: 3, username: "alice" }, ...extra });
    await promise;
    return ws;
  }

  beforeEach(() => {
    storage = memoryStorage();
    let options;
    ({ factory, clock, options } = fakeOptions({ reconnectAttempts: Infinity }));
    connection = new WebSocketConnection(options);
    outbox = newOutbox();
  });

  it("keeps edits made while disconnected in storage, keyed by user and trip, and counts them", () => {
    const counts = [];
    outbox.on("change", (c) => counts.push(c.waiting));
    const first = outbox.addEdit({ field: "name", value: "Porto", baseVersion: 5 });
    outbox.addEdit({ field: "budget", value: "900", baseVersion: 5 });
    assert.match(first.update_id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(counts, [1, 2]);
    assert.equal(outbox.key, `${OUTBOX_STORAGE_PREFIX}.3.7`);
    const stored = JSON.parse(storage.getItem(outbox.key)).entries;
    assert.deepEqual(stored.map((e) => [e.field, e.value, e.base_version]), [["name", "Porto", 5], ["budget", "900", 5]]);

    // A reload: a new outbox over the same storage has them; another user or trip has none.
    const reloaded = newOutbox();
    assert.deepEqual(reloaded.counts(), { total: 2, edits: 2, messages: 0, waiting: 2 });
    assert.equal(reloaded.entries[0].update_id, first.update_id);
    assert.equal(newOutbox({ userId: 4 }).size, 0);
    assert.equal(newOutbox({ tripId: 8 }).size, 0);
  });

  it("several edits of one field while offline are one update: the last value, the first base", () => {
    const first = outbox.addEdit({ field: "notes", value: "a", baseVersion: 5 });
    outbox.addEdit({ field: "budget", value: "1", baseVersion: 5 });
    const again = outbox.addEdit({ field: "notes", value: "abc", baseVersion: 6 });
    assert.equal(again.update_id, first.update_id);
    assert.deepEqual(outbox.entries.map((e) => [e.field, e.value, e.base_version]), [["notes", "abc", 5], ["budget", "1", 5]]);
  });

  it("sends a first connection's entries after its snapshot, in order, with their original ids", async () => {
    const edit = outbox.addEdit({ field: "name", value: "Porto", baseVersion: 5 });
    const other = outbox.addEdit({ field: "budget", value: "900", baseVersion: 4 });
    outbox.attach(connection, "trip");
    const ws = await establish();
    assert.deepEqual(sentMessages(ws), []); // established, but not caught up yet
    assert.deepEqual(outbox.waitingEntries().map((e) => e.update_id), [edit.update_id, other.update_id]);
    ws.receive(SNAPSHOT);
    assert.deepEqual(sentMessages(ws), [
      { type: "trip.update", id: edit.update_id, update_id: edit.update_id, field: "name", value: "Porto", base_version: 5 },
      { type: "trip.update", id: other.update_id, update_id: other.update_id, field: "budget", value: "900", base_version: 4 },
    ]);
    assert.equal(outbox.waitingCount, 0);
    assert.equal(outbox.size, 2); // until acknowledged
  });

  it("after a reconnect, sends only once the resume is answered", async () => {
    outbox.attach(connection, "trip");
    let ws = await establish();
    ws.receive(SNAPSHOT);
    ws.serverClose(1006);
    const edit = outbox.addEdit({ field: "notes", value: "offline", baseVersion: 5 });
    assert.equal(outbox.waitingCount, 1);
    clock.advance(60000);
    ws = factory.last();
    ws.establish({ connection_type: "trip_collaboration" });
    assert.deepEqual(sentMessages(ws), [{ type: "resume", last_seq: 12 }]);
    ws.receive({ ...SNAPSHOT, seq: 14 }); // the fresh snapshot comes before the replay
    ws.receive({ type: "trip.updated", seq: 13, field: "notes", value: "theirs", version: 6, update_id: "other" });
    assert.deepEqual(sentMessages(ws).length, 1);
    ws.receive({ type: "resume.complete", last_seq: 12, replayed: 1, seq: 14 });
    assert.deepEqual(sentMessages(ws).slice(1), [outboxMessage({ ...edit })]);
  });

  it("removes an entry only when acknowledged: an ack-less disconnect sends it again, same update_id", async () => {
    const settled = [];
    outbox.on("settled", ({ entry, status }) => settled.push([entry.field, status]));
    const edit = outbox.addEdit({ field: "name", value: "Porto", baseVersion: 5 });
    const merged = outbox.addEdit({ field: "notes", value: "mine", baseVersion: 5 });
    outbox.attach(connection, "trip");
    let ws = await establish();
    ws.receive(SNAPSHOT);
    ws.receive({ type: "ack", request_id: merged.update_id, update_id: merged.update_id, status: "merged", original_status: "merged", field: "notes", value: "mine and theirs", version: 7, seq: 14, conflict_id: null });
    assert.deepEqual(settled, [["notes", "merged"]]);
    ws.serverClose(1006); // the name's ack never came
    assert.equal(outbox.waitingCount, 1);
    assert.equal(newOutbox().size, 1); // still stored
    clock.advance(60000);
    ws = factory.last();
    ws.establish();
    ws.receive({ type: "resume.complete", last_seq: 12, replayed: 0, seq: 12 });
    assert.deepEqual(sentMessages(ws).slice(1), [outboxMessage({ ...edit })]);
    ws.receive({ type: "ack", update_id: edit.update_id, status: "duplicate", original_status: "applied", value: "Porto", version: 6, seq: 13, conflict_id: null });
    assert.deepEqual(settled, [["notes", "merged"], ["name", "applied"]]);
    assert.equal(outbox.size, 0);
    assert.equal(storage.getItem(outbox.key), null);
  });

  it("a conflict ack settles the entry too (the page shows the conflict)", async () => {
    const edit = outbox.addEdit({ field: "budget", value: "3500", baseVersion: 5 });
    outbox.attach(connection, "trip");
    const ws = await establish();
    ws.receive(SNAPSHOT);
    ws.receive({ type: "ack", update_id: edit.update_id, status: "conflict", original_status: "conflict", value: "3000", version: 6, seq: 13, conflict_id: 4 });
    assert.equal(outbox.size, 0);
  });

  it("an edit made while connected and caught up goes at once; a sent edit is never rewritten", async () => {
    outbox.attach(connection, "trip");
    const ws = await establish();
    ws.receive(SNAPSHOT);
    const first = outbox.addEdit({ field: "notes", value: "a", baseVersion: 5 });
    const second = outbox.addEdit({ field: "notes", value: "ab", baseVersion: 5 });
    assert.notEqual(second.update_id, first.update_id);
    assert.deepEqual(sentMessages(ws).map((m) => m.value), ["a", "ab"]);
    assert.equal(outbox.waitingCount, 0);
  });

  it("a trip.updated naming an entry settles it (another tab sent it)", () => {
    const edit = outbox.addEdit({ field: "notes", value: "a", baseVersion: 5 });
    outbox.handleMessage({ type: "trip.updated", seq: 13, update_id: edit.update_id, field: "notes", value: "a", version: 6 });
    assert.equal(outbox.size, 0);
  });

  it("a refusal naming an entry drops it; a rate limit keeps it and sends it again after retry_after", async () => {
    const refused = [];
    outbox.on("refused", ({ entry }) => refused.push(entry.field));
    const bad = outbox.addEdit({ field: "budget", value: "lots", baseVersion: 5 });
    const limited = outbox.addEdit({ field: "name", value: "Porto", baseVersion: 5 });
    outbox.attach(connection, "trip");
    const ws = await establish();
    ws.receive(SNAPSHOT);
    ws.receive({ type: "error", request_id: bad.update_id, error: { code: "INVALID_MESSAGE_FORMAT", message: "bad", details: { field: "budget" } } });
    ws.receive({ type: "error", request_id: limited.update_id, error: { code: "RATE_LIMIT_EXCEEDED", message: "slow down", details: { retry_after: 2 } } });
    assert.deepEqual(refused, ["budget"]);
    assert.equal(outbox.size, 1);
    assert.equal(outbox.waitingCount, 1);
    const before = sentMessages(ws).length;
    clock.advance(1999);
    assert.equal(sentMessages(ws).length, before);
    clock.advance(1);
    assert.deepEqual(sentMessages(ws).slice(before), [outboxMessage({ ...limited })]);
  });

  it("chat messages go over the chat stream after its history, once each, settled by their ack", async () => {
    const message = outbox.addMessage({ text: "see you in Porto" });
    outbox.addEdit({ field: "name", value: "Porto", baseVersion: 5 });
    assert.deepEqual(outbox.counts(), { total: 2, edits: 1, messages: 1, waiting: 2 });
    outbox.attach(connection, "chat");
    const ws = await establish({ connection_type: "chat" });
    ws.receive({ type: "chat.history", trip_id: 7, seq: 20, has_more: false, messages: [] });
    assert.deepEqual(sentMessages(ws), [{ type: "chat.send", id: message.client_id, text: "see you in Porto", client_id: message.client_id }]);
    ws.receive({ type: "ack", request_id: message.client_id, status: "posted", seq: 21, message: { seq: 21, client_id: message.client_id, text: "see you in Porto" } });
    assert.deepEqual(outbox.counts(), { total: 1, edits: 1, messages: 0, waiting: 1 });
  });

  it("keeps entries in memory when storage refuses them, and says so", () => {
    const full = { getItem: () => null, setItem: () => { throw new Error("QuotaExceededError"); }, removeItem: () => {} };
    const errors = [];
    const kept = newOutbox({ storage: full });
    kept.on("error", (e) => errors.push(e.message));
    kept.addEdit({ field: "name", value: "Porto", baseVersion: 1 });
    assert.deepEqual(errors, ["QuotaExceededError"]);
    assert.equal(kept.size, 1);
  });

  it("refuses an edit without a field or an integer base version", () => {
    assert.throws(() => outbox.addEdit({ value: "x", baseVersion: 1 }), TypeError);
    assert.throws(() => outbox.addEdit({ field: "name", value: "x" }), TypeError);
    assert.throws(() => new OfflineOutbox({ tripId: 1, storage }), TypeError);
  });
});
