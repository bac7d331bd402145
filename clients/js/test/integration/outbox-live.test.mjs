// The offline outbox against a running server (skipped unless TRIPSAGE_WS_URL, TRIPSAGE_TOKEN and
// TRIPSAGE_TRIP_ID are set; see live.test.mjs): what was kept while disconnected is sent once the
// sockets have caught up, settled by the server's answers, and sent again after a drop without
// being applied twice. It edits the trip's `destination` and posts chat messages.
import { test } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection } from "../../websocket-connection.js";
import { OfflineOutbox, memoryStorage } from "../../outbox.js";
import { skip, socketUrl, token, tripId, tripUrl, when } from "../live-env.mjs";

test("live: edits and chat messages kept while disconnected are sent after the catch-up, once", { skip, timeout: 60000 }, async () => {
  const trip = new WebSocketConnection({ url: tripUrl(), token, reconnectAttempts: 3 });
  const chat = new WebSocketConnection({ url: socketUrl(`/ws/chat/${tripId}/`), token, reconnectAttempts: 3 });
  const storage = memoryStorage();
  const outbox = new OfflineOutbox({ userId: "live", tripId, storage });
  outbox.attach(trip, "trip");
  outbox.attach(chat, "chat");
  const settled = [];
  outbox.on("settled", ({ entry, status }) => settled.push([entry.kind, status]));
  try {
    // Before any socket: kept, not sent. The base is the trip's version as last seen (0 here:
    // nobody else changes the destination in this run, so no conflict).
    const edit = outbox.addEdit({ field: "destination", value: `Outbox ${Date.now()}`, baseVersion: 0 });
    const message = outbox.addMessage({ text: `Kept while offline ${edit.update_id}` });
    assert.equal(outbox.waitingCount, 2);

    const editSettled = when(outbox, "settled", ({ entry }) => entry.id === edit.id);
    const messageSettled = when(outbox, "settled", ({ entry }) => entry.id === message.id);
    const updated = when(trip, "message", (m) => m.type === "trip.updated" && m.update_id === edit.update_id);
    const posted = when(chat, "message", (m) => m.type === "chat.message" && m.message.client_id === message.client_id);
    await Promise.all([trip.connect(), chat.connect()]);
    const editAnswer = await editSettled;
    assert.equal(editAnswer.status, "applied", JSON.stringify(editAnswer.answer));
    assert.equal((await updated).value, edit.value);
    assert.equal((await messageSettled).status, "posted");
    assert.equal((await posted).message.text, message.text);
    assert.equal(outbox.size, 0);
    assert.equal(storage.getItem(outbox.key), null);

    // Dropped: kept again, then sent after the resume is answered.
    trip.goOffline();
    const again = outbox.addEdit({ field: "destination", value: `${edit.value}, again`, baseVersion: (await updated).version });
    assert.equal(outbox.waitingCount, 1);
    const resumed = when(trip, "message", (m) => m.type === "resume.complete" || m.type === "resync.required");
    const againSettled = when(outbox, "settled", ({ entry }) => entry.id === again.id);
    const againUpdated = when(trip, "message", (m) => m.type === "trip.updated" && m.update_id === again.update_id);
    const sent = when(outbox, "sent", (entry) => entry.id === again.id);
    trip.goOnline();
    const complete = await resumed;
    assert.equal(complete.type, "resume.complete", JSON.stringify(complete));
    await sent;
    assert.equal((await againSettled).status, "applied");
    await againUpdated; // its event, which would settle a retry kept meanwhile as well

    // Sent again with its original update_id (an ack-less drop): the server applies it once.
    const retry = outbox.addEdit({ field: "destination", value: again.value, baseVersion: again.base_version, updateId: again.update_id });
    const duplicate = await when(outbox, "settled", ({ entry }) => entry.id === retry.id);
    assert.equal(duplicate.answer.status, "duplicate");
    assert.equal(duplicate.status, "applied");
    assert.deepEqual(settled.map(([kind]) => kind).sort(), ["edit", "edit", "edit", "message"]);
  } finally {
    trip.disconnect();
    chat.disconnect();
  }
});
