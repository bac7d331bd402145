// Against a running server. Skipped unless TRIPSAGE_WS_URL (e.g. ws://127.0.0.1:8765),
// TRIPSAGE_TOKEN (an access token) and TRIPSAGE_TRIP_ID are set. Node 20 needs its WebSocket:
//   node --experimental-websocket --test --test-concurrency=1 clients/js/test/integration/
import { test } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection } from "../../websocket-connection.js";
import { OptimisticUpdateManager, tripUpdateMessage } from "../../optimistic.js";
import { next, skip, token, tripId, tripUrl } from "../live-env.mjs";

test("live: connect, snapshot, trip.update of notes answered by ack, resume after reconnect", { skip, timeout: 60000 }, async () => {
  const url = tripUrl();
  const connection = new WebSocketConnection({ url, token, reconnectAttempts: 2 });
  const errors = [];
  connection.on("error", (error) => errors.push(error));
  try {
    const snapshotPromise = next(connection, (m) => m.type === "trip.snapshot");
    const rateStatusPromise = next(connection, (m) => m.type === "rate_limit_status");
    await connection.connect();
    const established = await connection.whenEstablished();
    assert.equal(established.type, "connection.established");
    assert.equal(established.connection_type, "trip_collaboration");
    assert.equal(connection.state, "connected");
    await rateStatusPromise;
    const snapshot = await snapshotPromise;
    assert.equal(String(snapshot.trip.id), String(tripId));
    assert.equal(connection.lastSeq, snapshot.seq);

    // An optimistic edit of `notes`, based on the snapshot's version.
    const manager = new OptimisticUpdateManager();
    connection.on("message", (m) => manager.handleMessage(m));
    const confirmed = new Promise((resolve) => manager.once("confirmed", resolve));
    const value = `Edited by the JS client's live test at ${new Date().toISOString()}`;
    const update = await manager.applyOptimisticUpdate({
      id: crypto.randomUUID(),
      resourceType: "trip",
      resourceId: snapshot.trip.id,
      field: "notes",
      value,
      baseVersion: snapshot.trip.version,
    });
    const ackPromise = next(connection, (m) => (m.type === "ack" && m.update_id === update.id) || (m.type === "error" && m.request_id === update.id));
    const updatedPromise = next(connection, (m) => m.type === "trip.updated" && m.update_id === update.id);
    assert.equal(connection.send(tripUpdateMessage(update)), "sent");

    const ack = await ackPromise;
    assert.equal(ack.type, "ack", JSON.stringify(ack));
    assert.equal(ack.status, "applied");
    assert.equal(ack.field, "notes");
    assert.equal(ack.value, value);
    assert.ok(ack.version > snapshot.trip.version);
    await confirmed;
    assert.equal(manager.pendingUpdates.size, 0);

    const updated = await updatedPromise;
    assert.equal(updated.seq, ack.seq);
    assert.equal(connection.lastSeq, updated.seq);

    // Replace the socket: the client resumes from the last seq it saw.
    const resumed = next(connection, (m) => m.type === "resume.complete" || m.type === "resync.required");
    const reconnected = new Promise((resolve) => connection.once("reconnected", resolve));
    connection.reconnect();
    await reconnected;
    const complete = await resumed;
    assert.equal(complete.type, "resume.complete", JSON.stringify(complete));
    assert.equal(complete.last_seq, updated.seq);

    // A retry of the same update is answered as a duplicate and changes nothing.
    const dupPromise = next(connection, (m) => m.type === "ack" && m.update_id === update.id);
    connection.send(tripUpdateMessage(update));
    const duplicate = await dupPromise;
    assert.equal(duplicate.status, "duplicate");
    assert.equal(duplicate.original_status, "applied");

    assert.deepEqual(errors.map((e) => e.code), []);
  } finally {
    connection.disconnect();
  }
});

test("live: a bad token is refused with AUTHENTICATION_FAILED and 4001, without reconnecting", { skip, timeout: 30000 }, async () => {
  const url = tripUrl();
  const connection = new WebSocketConnection({ url, token: "not-a-jwt", reconnectAttempts: 3 });
  try {
    await connection.connect(); // the socket opened and the token went out
    await assert.rejects(connection.whenEstablished(), (error) => {
      assert.equal(error.code, "AUTHENTICATION_FAILED");
      assert.equal(error.details.reason, "malformed");
      assert.equal(error.closeCode, 4001);
      return true;
    });
    assert.equal(connection.state, "disconnected");
  } finally {
    connection.disconnect();
  }
});

test("live: the token and the resume go first; a message sent once connect() resolved is answered after them", { skip, timeout: 60000 }, async () => {
  const url = tripUrl();
  const frames = []; // what the client wrote, in order
  class RecordingWebSocket extends WebSocket {
    send(data) {
      frames.push(JSON.parse(data));
      super.send(data);
    }
  }
  const connection = new WebSocketConnection({ url, token, reconnectAttempts: 2, WebSocket: RecordingWebSocket });
  const received = [];
  connection.on("message", (m) => received.push(m));
  const errors = [];
  connection.on("error", (error) => errors.push(error));
  try {
    const snapshot = next(connection, (m) => m.type === "trip.snapshot");
    await connection.connect();
    // The token is on the wire and the server has not answered yet: straight to the socket.
    assert.equal(connection.state, "connecting");
    assert.equal(connection.send({ type: "echo", id: "early", data: "before established" }), "sent");
    const early = await next(connection, (m) => m.request_id === "early");
    assert.equal(early.type, "echo", JSON.stringify(early));
    await snapshot;
    const order = received.map((m) => m.type);
    assert.ok(order.indexOf("connection.established") < order.indexOf("trip.snapshot"), order.join());
    assert.ok(order.indexOf("trip.snapshot") < received.indexOf(early), order.join());
    assert.deepEqual(frames.map((f) => f.type ?? "token").filter((t) => t !== "pong"), ["token", "echo"]);
    const lastSeq = connection.lastSeq;
    assert.equal(typeof lastSeq, "number");

    // A new socket: the resume goes right after the token, before the server has answered it,
    // and a message sent once connect() resolved follows it.
    frames.length = 0;
    received.length = 0;
    const resumed = next(connection, (m) => m.type === "resume.complete" || m.type === "resync.required");
    const answered = next(connection, (m) => m.request_id === "after-resume");
    await connection.reconnect();
    assert.equal(connection.state, "reconnecting");
    assert.equal(connection.send({ type: "echo", id: "after-resume", data: "x" }), "sent");
    assert.deepEqual(frames, [{ token }, { type: "resume", last_seq: lastSeq }, { type: "echo", id: "after-resume", data: "x" }]);
    const complete = await resumed;
    assert.equal(complete.type, "resume.complete", JSON.stringify(complete));
    assert.equal(complete.last_seq, lastSeq);
    const echo = await answered;
    assert.equal(echo.type, "echo", JSON.stringify(echo));
    assert.ok(received.indexOf(complete) < received.indexOf(echo));
    assert.equal(received[0].type, "connection.established");
    assert.equal(connection.state, "connected");
    assert.deepEqual(errors.map((e) => e.code), []);
  } finally {
    connection.disconnect();
  }
});

test("live: the server's flow-control pings are answered (1.2 MB of echoes, no 4009)", { skip, timeout: 60000 }, async () => {
  const url = tripUrl();
  const connection = new WebSocketConnection({ url, token, reconnectAttempts: 0 });
  const closes = [];
  let pings = 0;
  connection.on("close", (event) => closes.push(event.code));
  connection.on("message", (m) => {
    if (m.type === "ping") pings += 1;
  });
  try {
    await connection.connect();
    const data = "x".repeat(30000);
    for (let i = 0; i < 40; i++) {
      const id = `echo-${i}`;
      for (;;) {
        const reply = next(connection, (m) => m.request_id === id && (m.type === "echo" || m.type === "error"));
        connection.send({ type: "echo", id, data });
        const answer = await reply;
        if (answer.type === "echo") break;
        assert.equal(answer.error.code, "RATE_LIMIT_EXCEEDED", JSON.stringify(answer));
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(answer.error.details.retry_after * 1000)));
      }
    }
    // A ping after every 64 KiB sent: about 18 of them, each answered by the client's pong.
    assert.ok(pings >= 10, `only ${pings} pings`);
    assert.equal(connection.state, "connected");
    assert.deepEqual(closes, []);
  } finally {
    connection.disconnect();
  }
});
