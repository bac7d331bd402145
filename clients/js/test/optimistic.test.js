import { describe, it, beforeEach, mock } from "node:test";
import assert from "node:assert/strict";

import { OptimisticUpdateManager, tripUpdateMessage } from "../optimistic.js";

// The seed's Jest cases ("OptimisticUpdateManager"), ported to node:test.
describe("OptimisticUpdateManager (the seed's cases)", () => {
  let manager;
  let mockConflictResolver;

  beforeEach(() => {
    mockConflictResolver = {
      hasConflict: mock.fn(),
      resolve: mock.fn(),
    };
    manager = new OptimisticUpdateManager(mockConflictResolver);
  });

  it("should apply optimistic updates immediately", async () => {
    const update = {
      id: "test-update",
      operation: "update",
      resourceType: "trip",
      resourceId: "trip-123",
      data: { name: "New Name" },
      timestamp: Date.now(),
      serverConfirmed: false,
    };

    const uiUpdateSpy = mock.method(manager, "applyToUI");

    await manager.applyOptimisticUpdate(update);

    assert.deepEqual(uiUpdateSpy.mock.calls[0].arguments, [update]);
    assert.equal(manager["pendingUpdates"].has("test-update"), true);
  });

  it("should handle server confirmation", async () => {
    // Setup optimistic update
    const update = {
      id: "test-update",
      operation: "update",
      resourceType: "trip",
      resourceId: "trip-123",
      data: { name: "New Name" },
      timestamp: Date.now(),
      serverConfirmed: false,
    };

    await manager.applyOptimisticUpdate(update);

    // Simulate server confirmation
    await manager.handleServerUpdate({
      resourceId: "trip-123",
      data: { name: "New Name" },
    });

    assert.equal(manager["pendingUpdates"].has("test-update"), false);
  });
});

describe("OptimisticUpdateManager", () => {
  const UPDATE_ID = "5f0c1a52-8d2e-4b7a-9a51-6a4f1f2b3c4d";
  let applied;
  let rolledBack;
  let conflicts;
  let manager;

  beforeEach(() => {
    applied = [];
    rolledBack = [];
    conflicts = [];
    manager = new OptimisticUpdateManager(null, {
      applyToUI: (u) => applied.push(u.id),
      rollbackUI: (u, reason) => rolledBack.push([u.id, reason]),
      onConflict: (c) => conflicts.push(c),
    });
  });

  const budgetUpdate = () => ({ id: UPDATE_ID, resourceType: "trip", resourceId: 1, field: "budget", value: "3500", baseVersion: 7 });

  it("builds the trip.update message", () => {
    assert.deepEqual(tripUpdateMessage(budgetUpdate()), {
      type: "trip.update", id: UPDATE_ID, update_id: UPDATE_ID, field: "budget", value: "3500", base_version: 7,
    });
    assert.equal(tripUpdateMessage({ id: "x", data: { notes: "hi" }, baseVersion: 1 }).field, "notes");
  });

  it("an applied ack confirms", async () => {
    const confirmed = [];
    manager.on("confirmed", (u) => confirmed.push(u.id));
    await manager.applyOptimisticUpdate(budgetUpdate());
    assert.deepEqual(applied, [UPDATE_ID]);
    manager.handleAck({ type: "ack", request_id: UPDATE_ID, update_id: UPDATE_ID, status: "applied", field: "budget", value: "3500", version: 8, seq: 13, conflict_id: null });
    assert.equal(manager.pendingUpdates.size, 0);
    assert.deepEqual(confirmed, [UPDATE_ID]);
    assert.deepEqual(rolledBack, []);
  });

  it("a duplicate ack of an applied first attempt confirms", async () => {
    await manager.applyOptimisticUpdate(budgetUpdate());
    manager.handleAck({ type: "ack", update_id: UPDATE_ID, status: "duplicate", original_status: "applied" });
    assert.equal(manager.pendingUpdates.size, 0);
    assert.equal(conflicts.length, 0);
  });

  it("a conflict ack goes to the UI with the pending update and the ack", async () => {
    const events = [];
    manager.on("conflict", (c) => events.push(c));
    const update = await manager.applyOptimisticUpdate(budgetUpdate());
    const ack = { type: "ack", request_id: UPDATE_ID, update_id: UPDATE_ID, status: "conflict", field: "budget", value: "3000", version: 9, seq: 14, conflict_id: 4 };
    manager.handleAck(ack);
    assert.equal(conflicts.length, 1);
    assert.equal(conflicts[0].update, update);
    assert.equal(conflicts[0].ack, ack);
    assert.equal(conflicts[0].conflictId, 4);
    assert.equal(conflicts[0].serverValue, "3000");
    assert.equal(events.length, 1);
    assert.equal(manager.pendingUpdates.size, 0);
    assert.deepEqual(rolledBack, []); // the UI decides
  });

  it("a duplicate of a conflicted first attempt is a conflict", async () => {
    await manager.applyOptimisticUpdate(budgetUpdate());
    manager.handleAck({ type: "ack", update_id: UPDATE_ID, status: "duplicate", original_status: "conflict", conflict_id: 4 });
    assert.equal(conflicts.length, 1);
  });

  it("a merged ack settles the update with the merged text, not the proposal", async () => {
    const merges = [];
    const confirmed = [];
    manager.on("merged", (m) => merges.push(m));
    manager.on("confirmed", (u, answer) => confirmed.push([u.value, answer.status]));
    const update = await manager.applyOptimisticUpdate({ id: UPDATE_ID, field: "notes", value: "Day 1: Porto", data: { notes: "Day 1: Porto" }, baseVersion: 3 });
    const ack = { type: "ack", request_id: UPDATE_ID, update_id: UPDATE_ID, status: "merged", original_status: "merged", field: "notes", value: "Day 1: Porto\nDay 2: Braga", version: 9, seq: 14, conflict_id: null };
    manager.handleAck(ack);
    assert.equal(manager.pendingUpdates.size, 0);
    assert.equal(merges.length, 1);
    assert.equal(merges[0].update, update);
    assert.equal(merges[0].ack, ack);
    assert.equal(merges[0].value, "Day 1: Porto\nDay 2: Braga");
    assert.equal(update.value, "Day 1: Porto\nDay 2: Braga");
    assert.deepEqual(update.data, { notes: "Day 1: Porto\nDay 2: Braga" });
    assert.equal(update.proposedValue, "Day 1: Porto");
    assert.deepEqual(confirmed, [["Day 1: Porto\nDay 2: Braga", "merged"]]);
    assert.equal(conflicts.length, 0);
    assert.deepEqual(rolledBack, []);
  });

  it("a duplicate of a merged first attempt is a merge too", async () => {
    const merges = [];
    manager.on("merged", (m) => merges.push(m.value));
    await manager.applyOptimisticUpdate({ id: UPDATE_ID, field: "notes", value: "mine", baseVersion: 3 });
    manager.handleAck({ type: "ack", update_id: UPDATE_ID, status: "duplicate", original_status: "merged", field: "notes", value: "mine and theirs", version: 9, seq: 14, conflict_id: null });
    assert.deepEqual(merges, ["mine and theirs"]);
    assert.equal(manager.pendingUpdates.size, 0);
    assert.equal(conflicts.length, 0);
  });

  it("a trip.updated from a merge naming the update settles it as merged", async () => {
    const merges = [];
    manager.on("merged", (m) => merges.push(m.value));
    await manager.applyOptimisticUpdate({ id: UPDATE_ID, field: "notes", value: "mine", baseVersion: 3 });
    manager.handleMessage({ type: "trip.updated", seq: 14, update_id: UPDATE_ID, field: "notes", value: "both", version: 9, source: "merge" });
    assert.deepEqual(merges, ["both"]);
  });

  it("an error envelope naming the update rolls it back", async () => {
    await manager.applyOptimisticUpdate(budgetUpdate());
    const envelope = { type: "error", request_id: UPDATE_ID, error: { code: "INVALID_MESSAGE_FORMAT", message: "bad", details: { reason: "invalid_value", field: "budget" } } };
    manager.handleAck(envelope);
    assert.deepEqual(rolledBack, [[UPDATE_ID, envelope]]);
    assert.equal(manager.pendingUpdates.size, 0);
  });

  it("an error for another request leaves the update pending", async () => {
    await manager.applyOptimisticUpdate(budgetUpdate());
    manager.handleMessage({ type: "error", request_id: "other", error: { code: "SERVER_ERROR" } });
    assert.equal(manager.pendingUpdates.size, 1);
  });

  it("handleMessage routes acks, errors and trip.updated", async () => {
    await manager.applyOptimisticUpdate(budgetUpdate());
    manager.handleMessage({ type: "trip.updated", seq: 5, update_id: UPDATE_ID, field: "budget", value: "3500" });
    assert.equal(manager.pendingUpdates.size, 0);
  });

  it("generates an id when the update has none", async () => {
    const update = await manager.applyOptimisticUpdate({ field: "notes", value: "x", baseVersion: 0 });
    assert.match(update.id, /^[0-9a-f-]{36}$/);
    assert.equal(manager.pendingUpdates.get(update.id), update);
  });

  it("asks the conflict resolver about server data that differs", async () => {
    const resolver = { hasConflict: mock.fn(() => true), resolve: mock.fn(() => "theirs") };
    const m = new OptimisticUpdateManager(resolver);
    const seen = [];
    m.on("conflict", (c) => seen.push(c));
    await m.applyOptimisticUpdate({ id: "u", resourceId: "trip-1", data: { name: "Mine" } });
    await m.handleServerUpdate({ resourceId: "trip-1", data: { name: "Theirs" } });
    assert.equal(resolver.hasConflict.mock.callCount(), 1);
    assert.equal(seen[0].resolution, "theirs");
  });

  it("rollbackAll undoes everything pending", async () => {
    await manager.applyOptimisticUpdate({ id: "a", field: "notes", value: 1 });
    await manager.applyOptimisticUpdate({ id: "b", field: "name", value: 2 });
    manager.rollbackAll("gone");
    assert.deepEqual(rolledBack, [["a", "gone"], ["b", "gone"]]);
  });
});
