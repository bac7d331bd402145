import { describe, it, beforeEach, mock } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection, WebSocketError, EventEmitter } from "../websocket-connection.js";
import { fakeOptions } from "./helpers.js";

// The seed's Jest cases ("Unit Testing Collaboration Features"), ported to node:test (the seed's
// own file runs in Jest: test/seed-jest/seed.test.ts).
describe("WebSocketConnection (the seed's cases)", () => {
  let connection;
  let mockWebSocket;
  let WebSocketMock;
  let clock;

  beforeEach(() => {
    mockWebSocket = {
      send: mock.fn(),
      close: mock.fn(),
      readyState: 1, // WebSocket.OPEN
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    // Mock WebSocket constructor (injected instead of replacing global.WebSocket).
    WebSocketMock = mock.fn(function () {
      return mockWebSocket;
    });
    ({ clock } = fakeOptions());
    connection = new WebSocketConnection({
      url: "ws://test.com",
      token: "test-token",
      reconnectAttempts: 3,
      heartbeatInterval: 30000,
      WebSocket: WebSocketMock,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      now: clock.now,
    });
  });

  it("should establish connection successfully", async () => {
    const connectPromise = connection.connect();

    // Simulate successful connection
    mockWebSocket.onopen();

    await connectPromise;
    assert.deepEqual(mockWebSocket.send.mock.calls[0].arguments, [JSON.stringify({ token: "test-token" })]);
  });

  it("should handle connection errors", async () => {
    const connectPromise = connection.connect();

    // Simulate connection error
    mockWebSocket.onerror(new Error("Connection failed"));

    await assert.rejects(connectPromise, /Connection failed/);
  });

  it("should send messages when connected", () => {
    // The constructor opened the socket; it says OPEN before its open event: the token goes first.
    connection.send({ type: "test", data: "hello" });
    const sent = mockWebSocket.send.mock.calls.map((c) => c.arguments[0]);
    assert.deepEqual(sent, [JSON.stringify({ token: "test-token" }), JSON.stringify({ type: "test", data: "hello" })]);
  });

  it("should handle reconnection on close", () => {
    // Simulate unexpected close
    mockWebSocket.onclose({ code: 1006 });

    // Should attempt reconnection (after the backoff: injected timers, no sleeping)
    clock.advance(1000);
    assert.equal(WebSocketMock.mock.callCount(), 2);
  });
});

describe("WebSocketConnection", () => {
  let factory;
  let clock;
  let options;

  beforeEach(() => {
    ({ factory, clock, options } = fakeOptions());
  });

  /** Whether `promise` has settled once pending callbacks have run: "resolved", "rejected" or "pending". */
  async function settled(promise) {
    let result = "pending";
    promise.then(
      () => (result = "resolved"),
      () => (result = "rejected"),
    );
    await new Promise((resolve) => setImmediate(resolve));
    return result;
  }

  it("connect() resolves once the socket is open and the token sent; whenEstablished() on connection.established", async () => {
    const connection = new WebSocketConnection(options);
    const states = [];
    connection.on("stateChange", (state) => states.push(state));
    const connected = connection.connect();
    const established = connection.whenEstablished();
    const ws = factory.last();
    assert.equal(await settled(connected), "pending");
    ws.open();
    assert.equal(await connected, undefined);
    assert.deepEqual(ws.sent(), [{ token: "test-token" }]);
    assert.equal(await settled(established), "pending");
    assert.equal(connection.state, "connecting");
    ws.receive({ type: "connection.established", connection_id: "c1" });
    assert.equal((await established).connection_id, "c1");
    assert.equal(connection.state, "connected");
    assert.deepEqual(states, ["connecting", "connected"]);
    // Connected: both answer at once, and no socket is added.
    assert.equal(await connection.connect(), undefined);
    assert.equal((await connection.whenEstablished()).connection_id, "c1");
    assert.equal(factory.sockets.length, 1);
  });

  it("the constructor opens the socket once listeners had their chance; autoConnect: false does not", async () => {
    const connection = new WebSocketConnection(options);
    const states = [];
    connection.on("stateChange", (state) => states.push(state));
    assert.equal(factory.sockets.length, 0);
    await Promise.resolve();
    assert.equal(factory.sockets.length, 1);
    assert.equal(factory.last().url, "ws://test.com");
    assert.deepEqual(states, ["connecting"]); // seen by a listener attached after `new`

    const manual = new WebSocketConnection({ ...options, autoConnect: false });
    await settled(Promise.resolve());
    assert.equal(factory.sockets.length, 1);
    assert.equal(manual.state, "disconnected");
    manual.connect();
    assert.equal(factory.sockets.length, 2);
  });

  it("connect() while opening returns the same promise and opens no second socket", async () => {
    const connection = new WebSocketConnection(options);
    const first = connection.connect(); // before the constructor's turn: opens now
    assert.equal(factory.sockets.length, 1);
    await Promise.resolve();
    assert.equal(connection.connect(), first);
    assert.equal(factory.sockets.length, 1);
    factory.last().open();
    await first;
    assert.equal(await settled(connection.connect()), "resolved"); // token on the wire, not established yet
    assert.equal(factory.sockets.length, 1);
  });

  it("disconnect() before the constructor's turn: no socket is opened", async () => {
    const connection = new WebSocketConnection(options);
    connection.disconnect();
    await settled(Promise.resolve());
    assert.equal(factory.sockets.length, 0);
    assert.equal(connection.state, "disconnected");
  });

  it("connect() rejects when the socket fails before it opens", async () => {
    const connection = new WebSocketConnection(options);
    const connected = connection.connect();
    const established = connection.whenEstablished();
    factory.last().fail(new Error("Connection failed"));
    await assert.rejects(connected, (e) => e instanceof WebSocketError && e.code === "CONNECTION_FAILED" && /Connection failed/.test(e.message));
    await assert.rejects(established, (e) => e.code === "CONNECTION_FAILED");
  });

  it("whenEstablished() waits for the next socket when none is opening, and rejects on disconnect()", async () => {
    const connection = new WebSocketConnection({ ...options, autoConnect: false });
    const waiting = connection.whenEstablished();
    connection.connect();
    factory.last().establish({ connection_id: "c9" });
    assert.equal((await waiting).connection_id, "c9");

    const later = new WebSocketConnection({ ...options, autoConnect: false });
    const never = later.whenEstablished();
    later.disconnect();
    await assert.rejects(never, (e) => e.code === "CONNECTION_CLOSED");
    assert.equal(factory.sockets.length, 1);
  });

  it("after the token, send() writes straight to the socket; the queue keeps its order", async () => {
    const connection = new WebSocketConnection(options);
    assert.equal(connection.send({ type: "echo", data: 1 }), "queued"); // no socket yet
    await Promise.resolve();
    const ws = factory.last();
    assert.equal(connection.send({ type: "echo", data: 2 }), "queued"); // opening
    ws.open();
    // Older messages wait for the server's answer: a new one queues behind them.
    assert.equal(connection.send({ type: "echo", data: 3 }), "queued");
    assert.deepEqual(ws.sent(), [{ token: "test-token" }]);
    ws.receive({ type: "connection.established" });
    assert.equal(connection.send({ type: "echo", data: 4 }), "sent");
    assert.deepEqual(ws.sent().map((m) => m.data ?? m.token), ["test-token", 1, 2, 3, 4]);
  });

  it("with nothing queued, a message sent once connect() resolved goes out before connection.established", async () => {
    const connection = new WebSocketConnection(options);
    const connected = connection.connect();
    factory.last().open();
    await connected;
    assert.equal(connection.state, "connecting");
    assert.equal(connection.send({ type: "echo", data: "now" }), "sent");
    assert.deepEqual(factory.last().sent(), [{ token: "test-token" }, { type: "echo", data: "now" }]);
  });

  it("whenEstablished() rejects with the server's error envelope and close code; no reconnect after 4001", async () => {
    const connection = new WebSocketConnection(options);
    const errors = [];
    connection.on("error", (e) => errors.push(e));
    const connected = connection.connect();
    const promise = connection.whenEstablished();
    const ws = factory.last();
    ws.open();
    await connected; // the token is on the wire: connect() is done, the server has not answered
    ws.receive({
      type: "error",
      request_id: null,
      error: { code: "AUTHENTICATION_FAILED", message: "Invalid or expired token", details: { token_type: "jwt", reason: "expired" } },
    });
    ws.serverClose(4001);
    await assert.rejects(promise, (error) => {
      assert.ok(error instanceof WebSocketError);
      assert.equal(error.code, "AUTHENTICATION_FAILED");
      assert.equal(error.details.reason, "expired");
      assert.equal(error.closeCode, 4001);
      assert.equal(error.message, "Invalid or expired token");
      return true;
    });
    assert.equal(errors.length, 1);
    clock.advance(120000);
    assert.equal(factory.sockets.length, 1);
    assert.equal(connection.state, "disconnected");
  });

  it("whenEstablished() rejects on an error envelope even if no close follows (after the grace period)", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const promise = connection.whenEstablished();
    const ws = factory.last();
    ws.open();
    ws.receive({ type: "error", request_id: null, error: { code: "AUTHORIZATION_FAILED", message: "You are not a member of this trip.", details: { trip_id: 9 } } });
    clock.advance(1000);
    await assert.rejects(promise, (error) => error.code === "AUTHORIZATION_FAILED" && error.closeCode === null);
  });

  it("does not reconnect after 4003 on an established socket, and reports it", async () => {
    const connection = new WebSocketConnection(options);
    const errors = [];
    connection.on("error", (e) => errors.push(e));
    const p = connection.connect();
    factory.last().establish();
    await p;
    factory.last().receive({ type: "error", request_id: null, error: { code: "AUTHORIZATION_FAILED", message: "removed", details: {} } });
    factory.last().serverClose(4003);
    clock.advance(120000);
    assert.equal(factory.sockets.length, 1);
    assert.equal(connection.state, "disconnected");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].closeCode, 4003);
  });

  it("reconnects after 1006 with exponential backoff and full jitter, then gives up", async () => {
    const random = mock.fn(() => 0.5);
    ({ factory, clock, options } = fakeOptions({ random }));
    const connection = new WebSocketConnection(options);
    const reconnecting = [];
    const errors = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    connection.on("error", (e) => errors.push(e));
    const p = connection.connect();
    factory.last().establish();
    await p;

    factory.last().serverClose(1006);
    assert.equal(connection.state, "reconnecting");
    // attempt 1: ceiling 1000 ms, full jitter with random 0.5 -> 500 ms
    assert.deepEqual(reconnecting[0], { attempt: 1, delay: 500, code: 1006 });
    clock.advance(499);
    assert.equal(factory.sockets.length, 1);
    clock.advance(1);
    assert.equal(factory.sockets.length, 2);

    factory.last().serverClose(1006); // the attempt fails
    assert.equal(reconnecting[1].delay, 1000); // ceiling 2000
    clock.advance(1000);
    assert.equal(factory.sockets.length, 3);
    factory.last().serverClose(1006);
    assert.equal(reconnecting[2].delay, 2000); // ceiling 4000
    clock.advance(2000);
    assert.equal(factory.sockets.length, 4);
    factory.last().serverClose(1006);

    // 3 attempts spent: give up
    assert.equal(reconnecting.length, 3);
    assert.equal(connection.state, "disconnected");
    assert.equal(errors.at(-1).code, "CONNECTION_FAILED");
    assert.match(errors.at(-1).message, /Gave up/);
    clock.advance(600000);
    assert.equal(factory.sockets.length, 4);
  });

  it("full jitter: random() times the ceiling, from 0 to all of it; the ceiling is capped", () => {
    const at = (r) => new WebSocketConnection({ ...options, random: () => r });
    assert.equal(at(0)._backoff(1), 0);
    assert.equal(at(0.25)._backoff(1), 250);
    assert.equal(at(0.25)._backoff(3), 1000); // ceiling 1000 * 2^2
    assert.equal(at(0.999999)._backoff(1), 1000);
    assert.equal(at(0.999999)._backoff(10), 30000); // 512 s capped at maxReconnectDelay
    assert.equal(at(0)._backoff(10), 0);
  });

  /** The server's refusal of an overloaded process: SERVER_ERROR "overloaded", then 4013. */
  function refuseOverloaded(ws, retryAfter) {
    ws.open();
    ws.receive({
      type: "error",
      request_id: null,
      error: { code: "SERVER_ERROR", message: "busy", details: { reason: "overloaded", retryable: true, retry_after: retryAfter } },
    });
    ws.serverClose(4013);
  }

  it("after 4013 waits retry_after jittered to [1x, 2x), and a 4013 spends no attempt", async () => {
    // random() answers 0.5 for the backoff, then 0.75 for the hint's jitter, in turn
    const values = [0.5, 0.75];
    let calls = 0;
    ({ factory, clock, options } = fakeOptions({ random: () => values[calls++ % 2], reconnectAttempts: 2 }));
    const connection = new WebSocketConnection(options);
    const reconnecting = [];
    const errors = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    connection.on("error", (e) => errors.push(e));
    connection.connect();
    const first = connection.whenEstablished();
    refuseOverloaded(factory.last(), 2);
    await assert.rejects(first, (e) => e.code === "SERVER_ERROR" && e.closeCode === 4013 && e.details.retry_after === 2);
    // backoff 0.5 * 1000 = 500; hint 2 s * 1000 * (1 + 0.75) = 3500: the larger
    assert.deepEqual(reconnecting[0], { attempt: 1, delay: 3500, code: 4013 });
    clock.advance(3499);
    assert.equal(factory.sockets.length, 1);
    clock.advance(1);
    assert.equal(factory.sockets.length, 2);

    // Refused again and again: more than reconnectAttempts (2), and it keeps coming back.
    for (let i = 0; i < 4; i++) {
      refuseOverloaded(factory.last(), 2);
      clock.advance(reconnecting.at(-1).delay);
    }
    assert.equal(factory.sockets.length, 6);
    assert.equal(connection.state, "reconnecting");
    assert.ok(reconnecting.every((r) => r.code === 4013 && r.delay >= 3500));
    assert.ok(!errors.some((e) => /Gave up/.test(e.message)));
    // The backoff still grows with each attempt (attempt 5: ceiling 16 s, random 0.5 -> 8 s).
    assert.deepEqual(reconnecting[4], { attempt: 5, delay: 8000, code: 4013 });

    factory.last().establish();
    assert.equal(connection.state, "connected");
    // Established: the attempts start again, and other closes spend them as before.
    factory.last().serverClose(1006);
    assert.equal(reconnecting.at(-1).attempt, 1);
  });

  it("the hint is a floor: a longer backoff wins, and 4013 without a hint uses the backoff", async () => {
    ({ factory, clock, options } = fakeOptions({ random: () => 0.5, reconnectDelay: 10000 }));
    const connection = new WebSocketConnection(options);
    const reconnecting = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    connection.connect();
    refuseOverloaded(factory.last(), 1); // hint 1500 ms, backoff 5000 ms
    assert.equal(reconnecting[0].delay, 5000);
    clock.advance(5000);
    factory.last().open();
    factory.last().serverClose(4013); // no envelope
    assert.deepEqual(reconnecting[1], { attempt: 2, delay: 10000, code: 4013 });
  });

  it("any refusal while opening that carries retry_after is honoured, jittered", async () => {
    ({ factory, clock, options } = fakeOptions({ random: () => 0 }));
    const connection = new WebSocketConnection(options);
    const reconnecting = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    connection.connect();
    const ws = factory.last();
    ws.open();
    ws.receive({ type: "error", request_id: null, error: { code: "SERVER_ERROR", message: "x", details: { retryable: true, retry_after: 0.25 } } });
    ws.serverClose(4011);
    assert.deepEqual(reconnecting[0], { attempt: 1, delay: 250, code: 4011 });
  });

  it("a message's retry_after on an established socket does not delay a later reconnect", async () => {
    ({ factory, clock, options } = fakeOptions({ random: () => 0.5 }));
    const connection = new WebSocketConnection(options);
    const reconnecting = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    const p = connection.connect();
    factory.last().establish();
    await p;
    factory.last().receive({ type: "error", request_id: "m-1", error: { code: "RATE_LIMIT_EXCEEDED", message: "x", details: { retry_after: 9 } } });
    factory.last().serverClose(1006);
    assert.equal(reconnecting[0].delay, 500);
  });

  for (const code of [1001, 1011, 4008, 4009, 4011]) {
    it(`reconnects after close ${code}`, async () => {
      const connection = new WebSocketConnection(options);
      const p = connection.connect();
      factory.last().establish();
      await p;
      factory.last().serverClose(code);
      assert.equal(connection.state, "reconnecting");
      clock.advance(1000);
      assert.equal(factory.sockets.length, 2);
    });
  }

  it("waits the server's retry_after (seconds) before reconnecting after 4029", async () => {
    const connection = new WebSocketConnection(options);
    const p = connection.connect();
    factory.last().establish();
    await p;
    const reconnecting = [];
    connection.on("reconnecting", (info) => reconnecting.push(info));
    factory.last().receive({
      type: "error",
      request_id: null,
      error: { code: "RATE_LIMIT_EXCEEDED", message: "Closed for flooding", details: { reason: "flood", retry_after: 12.5 } },
    });
    factory.last().serverClose(4029);
    assert.equal(reconnecting[0].delay, 12500);
    clock.advance(12499);
    assert.equal(factory.sockets.length, 1);
    clock.advance(1);
    assert.equal(factory.sockets.length, 2);
  });

  it("reconnects with Infinity attempts without giving up", async () => {
    ({ factory, clock, options } = fakeOptions({ reconnectAttempts: Infinity }));
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    for (let i = 0; i < 20; i++) {
      factory.last().serverClose(1006);
      clock.advance(30000);
    }
    assert.equal(factory.sockets.length, 21);
    assert.equal(connection.state, "reconnecting");
  });

  it("sends resume with the last seq right after the token, then the queued messages on connection.established", async () => {
    const connection = new WebSocketConnection(options);
    const reconnected = [];
    connection.on("reconnected", (m) => reconnected.push(m));
    const p = connection.connect();
    const first = factory.last();
    first.establish();
    await p;
    first.receive({ type: "trip.snapshot", seq: 12, trip: { id: 1, version: 7, seq: 12 } });
    first.receive({ type: "trip.updated", seq: 13, field: "notes", value: "a" });
    first.receive({ type: "presence.update", version: 99 });
    first.receive({ type: "ack", status: "applied", seq: 14 }); // its trip.updated follows: not counted
    assert.equal(connection.lastSeq, 13);

    first.serverClose(1006);
    assert.equal(connection.send({ type: "trip.update", n: 1 }), "queued");
    assert.equal(connection.send({ type: "trip.update", n: 2 }), "queued");
    assert.equal(connection.send({ type: "trip.update", n: 3 }), "queued");
    assert.equal(connection.queuedCount, 3);

    clock.advance(1000);
    const second = factory.last();
    assert.notEqual(second, first);
    second.open();
    // The resume goes with the token; the queue waits for the server to accept the token.
    assert.deepEqual(second.sent(), [{ token: "test-token" }, { type: "resume", last_seq: 13 }]);
    assert.equal(connection.send({ type: "trip.update", n: 4 }), "queued"); // behind the others
    second.receive({ type: "connection.established", connection_id: "c2" });
    assert.deepEqual(second.sent(), [
      { token: "test-token" },
      { type: "resume", last_seq: 13 },
      { type: "trip.update", n: 1 },
      { type: "trip.update", n: 2 },
      { type: "trip.update", n: 3 },
      { type: "trip.update", n: 4 },
    ]);
    assert.equal(connection.queuedCount, 0);
    assert.equal(reconnected.length, 1);
    assert.equal(connection.state, "connected");
  });

  it("on a reconnect, a message sent once connect() resolved follows the token and the resume", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "trip.updated", seq: 7 });
    const opened = connection.reconnect();
    const ws = factory.last();
    ws.open();
    await opened;
    assert.equal(connection.send({ type: "echo", data: "after" }), "sent");
    ws.receive({ type: "connection.established" });
    assert.deepEqual(ws.sent(), [{ token: "test-token" }, { type: "resume", last_seq: 7 }, { type: "echo", data: "after" }]);
  });

  it("a socket that says OPEN before its open event gets the token and the resume before a message, once", async () => {
    const connection = new WebSocketConnection(options);
    const opens = [];
    connection.on("open", () => opens.push(true));
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "trip.updated", seq: 3 });
    factory.last().serverClose(1006);
    clock.advance(1000);
    const ws = factory.last();
    ws.readyState = 1; // open, its event not dispatched yet
    assert.equal(connection.send({ type: "echo", data: "x" }), "sent");
    ws.onopen({ type: "open" }); // the event, late: nothing is sent twice
    assert.deepEqual(ws.sent(), [{ token: "test-token" }, { type: "resume", last_seq: 3 }, { type: "echo", data: "x" }]);
    assert.equal(opens.length, 2);
  });

  it("does not send resume on a stream without seq", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "agent.runs", runs: [] });
    factory.last().serverClose(1001);
    clock.advance(1000);
    factory.last().establish();
    assert.deepEqual(factory.last().sent(), [{ token: "test-token" }]);
  });

  it("resync.required restarts the seq from its snapshot", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const ws = factory.last();
    ws.establish();
    ws.receive({ type: "trip.updated", seq: 500 });
    ws.receive({ type: "resync.required", reason: "unknown_seq", last_seq: 500, snapshot: { trip: { seq: 40 }, seq: 40 } });
    assert.equal(connection.lastSeq, 40);
    ws.receive({ type: "resume.complete", last_seq: 40, replayed: 0, seq: 41 });
    assert.equal(connection.lastSeq, 41);
  });

  it("queues sends made before connect and while connecting, and flushes them in order", async () => {
    const connection = new WebSocketConnection(options);
    connection.send({ type: "echo", data: 1 });
    const p = connection.connect();
    connection.send({ type: "echo", data: 2 });
    const ws = factory.last();
    ws.open();
    connection.send({ type: "echo", data: 3 });
    ws.receive({ type: "connection.established" });
    await p;
    assert.equal(connection.send({ type: "echo", data: 4 }), "sent");
    assert.deepEqual(
      ws.sent().map((m) => m.data ?? m.token),
      ["test-token", 1, 2, 3, 4],
    );
  });

  it("bounds the queue", () => {
    ({ factory, clock, options } = fakeOptions({ maxQueueSize: 2 }));
    const connection = new WebSocketConnection(options);
    const errors = [];
    connection.on("error", (e) => errors.push(e));
    assert.equal(connection.send({ n: 1 }), "queued");
    assert.equal(connection.send({ n: 2 }), "queued");
    assert.equal(connection.send({ n: 3 }), "dropped");
    assert.equal(errors[0].code, "QUEUE_FULL");
    assert.deepEqual(connection.clearQueue(), [{ n: 1 }, { n: 2 }]);
  });

  it("answers server pings with pongs naming the ping", async () => {
    const connection = new WebSocketConnection(options);
    const messages = [];
    connection.on("message", (m) => messages.push(m));
    connection.connect();
    const ws = factory.last();
    ws.establish();
    ws.receive({ type: "ping", id: "p-1" });
    ws.receive({ type: "ping", id: "p-2" });
    assert.deepEqual(ws.sent().slice(1), [
      { type: "pong", request_id: "p-1" },
      { type: "pong", request_id: "p-2" },
    ]);
    assert.deepEqual(messages.map((m) => m.type), ["connection.established", "ping", "ping"]);
  });

  it("sends its own ping every heartbeatInterval while open", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const ws = factory.last();
    ws.establish();
    clock.advance(29999);
    assert.equal(ws.sent().length, 1);
    clock.advance(1);
    assert.deepEqual(ws.sent().at(-1), { type: "ping" });
    ws.receive({ type: "pong", request_id: null });
    clock.advance(30000);
    assert.deepEqual(ws.sent().map((m) => m.type ?? "token"), ["token", "ping", "ping"]);
    connection.disconnect();
    clock.advance(90000);
    assert.equal(ws.sent().length, 3);
  });

  it("replaces a socket that has been silent past heartbeatTimeout", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const ws = factory.last();
    ws.establish();
    // The server answers nothing: after 70 s of silence the next tick drops the socket.
    clock.advance(90000);
    assert.equal(ws.close.mock.callCount(), 1);
    assert.equal(connection.state, "reconnecting");
    clock.advance(1000);
    assert.equal(factory.sockets.length, 2);
  });

  it("disconnect() closes with 1000 and stops reconnecting", async () => {
    const connection = new WebSocketConnection(options);
    const closes = [];
    connection.on("close", (e) => closes.push(e));
    const p = connection.connect();
    const ws = factory.last();
    ws.establish();
    await p;
    connection.disconnect();
    assert.deepEqual(ws.close.mock.calls[0].arguments, [1000, "client disconnect"]);
    assert.equal(connection.state, "disconnected");
    assert.equal(closes[0].code, 1000);
    ws.serverClose(1006); // late events from the old socket are ignored
    clock.advance(60000);
    assert.equal(factory.sockets.length, 1);
  });

  it("does not reconnect after a normal close from the server", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    factory.last().serverClose(1000);
    clock.advance(60000);
    assert.equal(factory.sockets.length, 1);
    assert.equal(connection.state, "disconnected");
  });

  it("setToken sends auth.refresh when connected and uses the new token for the next socket", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const ws = factory.last();
    ws.establish();
    connection.setToken("new-token");
    assert.deepEqual(ws.sent().at(-1), { type: "auth.refresh", id: "auth-refresh-1", token: "new-token" });
    ws.serverClose(1006);
    clock.advance(1000);
    factory.last().open();
    assert.deepEqual(factory.last().sent(), [{ token: "new-token" }]);
  });

  it("a refused refresh (the auth.refresh bucket) is sent again, with the current token, after retry_after", async () => {
    const connection = new WebSocketConnection(options);
    const errors = [];
    connection.on("error", (e) => errors.push(e));
    connection.connect();
    const ws = factory.last();
    ws.establish();
    connection.setToken("t2");
    const refreshes = () => ws.sent().filter((m) => m.type === "auth.refresh");
    ws.receive({
      type: "error",
      request_id: "auth-refresh-1",
      error: { code: "RATE_LIMIT_EXCEEDED", message: "Token refresh rate limit exceeded", details: { limit: 20, remaining: 0, retry_after: 2.5, window_seconds: 60, burst: 20, limit_type: "auth.refresh" } },
    });
    assert.equal(errors.at(-1).code, "RATE_LIMIT_EXCEEDED"); // still reported
    connection.setToken("t3"); // a newer token meanwhile: the retry sends it
    ws.receive({ type: "error", request_id: "auth-refresh-2", error: { code: "RATE_LIMIT_EXCEEDED", message: "", details: { retry_after: 2.5, limit_type: "auth.refresh" } } });
    clock.advance(2499);
    assert.equal(refreshes().length, 2);
    clock.advance(1);
    assert.deepEqual(refreshes().at(-1), { type: "auth.refresh", id: "auth-refresh-3", token: "t3" });
    ws.receive({ type: "auth.refreshed", request_id: "auth-refresh-3", token_expires_at: "2026-11-26T18:00:00Z" });
    clock.advance(120000);
    assert.equal(refreshes().length, 3);
    // Another message's refusal is not a refresh's.
    ws.receive({ type: "error", request_id: "m-1", error: { code: "RATE_LIMIT_EXCEEDED", message: "", details: { retry_after: 1 } } });
    clock.advance(120000);
    assert.equal(refreshes().length, 3);
  });

  it("a refresh refused on a socket since replaced is not sent on that socket", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    const ws = factory.last();
    ws.establish();
    connection.setToken("t2");
    ws.receive({ type: "error", request_id: "auth-refresh-1", error: { code: "RATE_LIMIT_EXCEEDED", message: "", details: { retry_after: 1, limit_type: "auth.refresh" } } });
    ws.serverClose(1006);
    clock.advance(1000);
    assert.equal(ws.sent().filter((m) => m.type === "auth.refresh").length, 1);
  });

  it("after a 4001, setToken + connect() connects again (and resumes)", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "trip.updated", seq: 5 });
    factory.last().receive({ type: "error", error: { code: "AUTHENTICATION_FAILED", message: "expired", details: { reason: "expired" } } });
    factory.last().serverClose(4001);
    assert.equal(connection.state, "disconnected");
    connection.setToken("fresh");
    const p = connection.connect();
    factory.last().establish();
    await p;
    assert.deepEqual(factory.last().sent(), [{ token: "fresh" }, { type: "resume", last_seq: 5 }]);
  });

  it("a failed first attempt rejects connect() and keeps retrying in the background", async () => {
    const connection = new WebSocketConnection(options);
    const p = connection.connect();
    factory.last().fail();
    factory.last().serverClose(1006);
    await assert.rejects(p, (e) => e.code === "CONNECTION_FAILED");
    assert.equal(connection.state, "reconnecting");
    clock.advance(1000);
    factory.last().establish();
    assert.equal(connection.state, "connected");
  });

  it("goOffline drops the socket without spending attempts; goOnline reconnects at once", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "trip.updated", seq: 3 });
    connection.goOffline();
    assert.equal(connection.state, "reconnecting");
    assert.equal(factory.sockets[0].close.mock.callCount(), 1);
    clock.advance(600000);
    assert.equal(factory.sockets.length, 1);
    connection.goOnline();
    assert.equal(factory.sockets.length, 2);
    factory.last().establish();
    assert.deepEqual(factory.last().sent().at(-1), { type: "resume", last_seq: 3 });
    assert.equal(connection.state, "connected");
  });

  it("goOnline does nothing to a connection that was never started or was disconnected", () => {
    const connection = new WebSocketConnection(options);
    connection.goOnline();
    connection.goOffline();
    assert.equal(factory.sockets.length, 0);
    connection.connect();
    factory.last().establish();
    connection.disconnect();
    connection.goOnline();
    assert.equal(factory.sockets.length, 1);
  });

  it("reconnect() replaces the socket at once", async () => {
    const connection = new WebSocketConnection(options);
    connection.connect();
    factory.last().establish();
    connection.reconnect();
    assert.equal(factory.sockets.length, 2);
    assert.equal(factory.sockets[0].close.mock.callCount(), 1);
  });

  it("emits every parsed message and ignores frames that are not JSON", () => {
    const connection = new WebSocketConnection(options);
    const messages = [];
    connection.on("message", (m) => messages.push(m));
    connection.connect();
    factory.last().establish();
    factory.last().receive("not json");
    factory.last().receive({ type: "trip.snapshot", seq: 1 });
    assert.deepEqual(messages.map((m) => m.type), ["connection.established", "trip.snapshot"]);
  });

  it("emits server error envelopes after establishment as `error` events", () => {
    const connection = new WebSocketConnection(options);
    const errors = [];
    connection.on("error", (e) => errors.push(e));
    connection.connect();
    factory.last().establish();
    factory.last().receive({ type: "error", request_id: "m-7", error: { code: "RATE_LIMIT_EXCEEDED", message: "Message rate limit exceeded", details: { retry_after: 0.2 } } });
    assert.equal(errors[0].code, "RATE_LIMIT_EXCEEDED");
    assert.equal(errors[0].requestId, "m-7");
    assert.equal(connection.state, "connected");
  });
});

describe("EventEmitter", () => {
  it("on/once/off and unsubscribe", () => {
    const emitter = new EventEmitter();
    const seen = [];
    const off = emitter.on("x", (v) => seen.push(["on", v]));
    emitter.once("x", (v) => seen.push(["once", v]));
    emitter.emit("x", 1);
    emitter.emit("x", 2);
    off();
    emitter.emit("x", 3);
    assert.deepEqual(seen, [["on", 1], ["once", 1], ["on", 2]]);
    assert.equal(emitter.listenerCount("x"), 0);
  });
});

describe("WebSocketConnection with a rate limiter", () => {
  it("paces sends and the queue flush by the limiter, in order", async () => {
    const { WebSocketRateLimiter } = await import("../rate-limiter.js");
    const { factory, clock, options } = fakeOptions();
    const limiter = new WebSocketRateLimiter({
      now: clock.now,
      enforceBurst: true,
      limits: { trip_collaboration: { limit: 60, window: 60000, burst: 2 } },
    });
    const connection = new WebSocketConnection({ ...options, rateLimiter: limiter });
    for (let n = 1; n <= 3; n++) connection.send({ type: "echo", data: n });
    connection.connect();
    const ws = factory.last();
    ws.establish({ connection_type: "trip_collaboration" });
    // burst 2: two go at once, the third when a token has refilled (1 per second)
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2]);
    assert.equal(connection.send({ type: "echo", data: 4 }), "queued");
    clock.advance(1000);
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2, 3]);
    clock.advance(1000);
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2, 3, 4]);
    assert.equal(connection.queuedCount, 0);
  });

  it("a refused refresh does not hold back messages", async () => {
    const { WebSocketRateLimiter } = await import("../rate-limiter.js");
    const { factory, clock, options } = fakeOptions();
    const limiter = new WebSocketRateLimiter({ now: clock.now });
    const connection = new WebSocketConnection({ ...options, rateLimiter: limiter });
    connection.connect();
    const ws = factory.last();
    ws.establish({ connection_type: "trip_collaboration" });
    connection.setToken("t2");
    ws.receive({ type: "error", request_id: "auth-refresh-1", error: { code: "RATE_LIMIT_EXCEEDED", message: "", details: { retry_after: 5, limit_type: "auth.refresh" } } });
    assert.equal(connection.send({ type: "echo", data: 1 }), "sent");
  });

  it("waits a limiter's getTimeUntilNextMessage when it has no waitMs (the seed's class)", async () => {
    const { WebSocketRateLimiter } = await import("../rate-limiter.js");
    const { factory, clock, options } = fakeOptions();
    // The seed's surface only: canSendMessage, getTimeUntilNextMessage (and updateFromServer).
    const ours = new WebSocketRateLimiter({ now: clock.now, limits: { chat: { limit: 2, window: 10000 } } });
    const seedLike = {
      canSendMessage: (type) => ours.canSendMessage(type),
      getTimeUntilNextMessage: (type) => ours.getTimeUntilNextMessage(type),
      updateFromServer: () => false,
    };
    const connection = new WebSocketConnection({ ...options, rateLimiter: seedLike, channelType: "chat" });
    connection.connect();
    const ws = factory.last();
    ws.establish({ connection_type: "chat" });
    for (let n = 1; n <= 3; n++) connection.send({ type: "echo", data: n });
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2]);
    clock.advance(9999);
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2]);
    clock.advance(1);
    assert.deepEqual(ws.sent().slice(1).map((m) => m.data), [1, 2, 3]);
  });

  it("learns the server's retry_after", async () => {
    const { WebSocketRateLimiter } = await import("../rate-limiter.js");
    const { factory, clock, options } = fakeOptions();
    const limiter = new WebSocketRateLimiter({ now: clock.now });
    const connection = new WebSocketConnection({ ...options, rateLimiter: limiter, channelType: "chat" });
    connection.connect();
    const ws = factory.last();
    ws.establish({ connection_type: "chat" });
    ws.receive({ type: "error", request_id: "m-7", error: { code: "RATE_LIMIT_EXCEEDED", message: "x", details: { retry_after: 0.5 } } });
    assert.equal(connection.send({ type: "chat.send", text: "hi" }), "queued");
    clock.advance(499);
    assert.equal(ws.sent().length, 1);
    clock.advance(1);
    assert.deepEqual(ws.sent().at(-1), { type: "chat.send", text: "hi" });
  });
});
