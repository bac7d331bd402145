import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { WebSocketConnection } from "../websocket-connection.js";
import { ConnectionLifecycleManager } from "../lifecycle.js";
import { fakeOptions, fakeWindow } from "./helpers.js";

describe("ConnectionLifecycleManager", () => {
  it("emits stateChange through connecting, connected, reconnecting, disconnected", () => {
    const { factory, clock, options } = fakeOptions();
    const connection = new WebSocketConnection(options);
    const lifecycle = new ConnectionLifecycleManager(connection, { window: null });
    const states = [];
    lifecycle.on("stateChange", (state) => states.push(state));
    connection.connect();
    factory.last().establish();
    factory.last().serverClose(1006);
    clock.advance(1000);
    factory.last().establish();
    connection.disconnect();
    assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected", "disconnected"]);
    assert.equal(lifecycle.state, "disconnected");
  });

  it("offline: reconnecting with the socket dropped; online: reconnects at once (the seed's Playwright case)", () => {
    const { factory, clock, options } = fakeOptions();
    const win = fakeWindow();
    const connection = new WebSocketConnection(options);
    const lifecycle = new ConnectionLifecycleManager(connection, { window: win });
    const states = [];
    lifecycle.on("stateChange", (state) => states.push(state));
    connection.connect();
    factory.last().establish();

    win.dispatchEvent(new Event("offline"));
    assert.equal(lifecycle.state, "reconnecting");
    assert.equal(lifecycle.online, false);
    assert.equal(factory.sockets[0].close.mock.callCount(), 1);
    clock.advance(600000); // no attempts while offline
    assert.equal(factory.sockets.length, 1);

    win.dispatchEvent(new Event("online"));
    assert.equal(factory.sockets.length, 2);
    factory.last().establish();
    assert.equal(lifecycle.state, "connected");
    assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected"]);
  });

  it("online while waiting for a backoff timer reconnects at once", () => {
    const { factory, options } = fakeOptions({ reconnectDelay: 10000 });
    const win = fakeWindow();
    const connection = new WebSocketConnection(options);
    new ConnectionLifecycleManager(connection, { window: win });
    connection.connect();
    factory.last().establish();
    factory.last().serverClose(1006);
    assert.equal(factory.sockets.length, 1);
    win.dispatchEvent(new Event("online"));
    assert.equal(factory.sockets.length, 2);
  });

  it("uses globalThis when it is an EventTarget, and destroy() removes the listeners", () => {
    const { factory, options } = fakeOptions();
    const added = [];
    const removed = [];
    const original = { add: globalThis.addEventListener, remove: globalThis.removeEventListener };
    globalThis.addEventListener = (type) => added.push(type);
    globalThis.removeEventListener = (type) => removed.push(type);
    try {
      const connection = new WebSocketConnection(options);
      const lifecycle = new ConnectionLifecycleManager(connection);
      assert.deepEqual(added, ["offline", "online"]);
      lifecycle.destroy();
      assert.deepEqual(removed, ["offline", "online"]);
      connection.connect();
      factory.last().establish();
      assert.equal(lifecycle.listenerCount("stateChange"), 0);
    } finally {
      globalThis.addEventListener = original.add;
      globalThis.removeEventListener = original.remove;
    }
  });
});
