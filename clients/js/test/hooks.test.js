import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { createUseWebSocket, useWebSocket } from "../react.js";
import { createUseWebSocketConnection, useWebSocketConnection } from "../vue.js";
import { fakeOptions, fakeWindow, tinyReact, tinyVue } from "./helpers.js";

function hookOptions(extra = {}) {
  const { factory, clock, options } = fakeOptions();
  const { WebSocket, setTimeout, clearTimeout, now, random } = options;
  return {
    factory,
    clock,
    options: {
      url: "ws://test.com/ws/trips/1/",
      token: "test-token",
      WebSocket,
      window: null,
      connectionOptions: { setTimeout, clearTimeout, now, random },
      ...extra,
    },
  };
}

describe("useWebSocket (React)", () => {
  it("connects on mount and exposes the seed's return values", () => {
    const react = tinyReact();
    const useWs = createUseWebSocket(react.React);
    const { factory, options } = hookOptions();
    const seen = { messages: [], connects: 0 };
    const props = { ...options, onMessage: (m) => seen.messages.push(m.type), onConnect: () => seen.connects++ };
    let result = react.mount(useWs, props);
    assert.deepEqual(Object.keys(result).sort(), ["connectionState", "disconnect", "error", "lastMessage", "reconnect", "sendMessage"]);
    assert.equal(result.connectionState, "connecting");
    assert.equal(factory.sockets.length, 1);

    factory.last().establish();
    result = react.result;
    assert.equal(result.connectionState, "connected");
    assert.equal(result.lastMessage.type, "connection.established");
    assert.equal(seen.connects, 1);

    factory.last().receive({ type: "trip.snapshot", seq: 1 });
    assert.equal(react.result.lastMessage.type, "trip.snapshot");
    assert.deepEqual(seen.messages, ["connection.established", "trip.snapshot"]);

    assert.equal(react.result.sendMessage({ type: "echo", data: 1 }), "sent");
    assert.deepEqual(factory.last().sent().at(-1), { type: "echo", data: 1 });
  });

  it("sets error, refreshes the token without reconnecting, disconnects on unmount", () => {
    const react = tinyReact();
    const useWs = createUseWebSocket(react.React);
    const { factory, options } = hookOptions();
    const errors = [];
    react.mount(useWs, { ...options, onError: (e) => errors.push(e) });
    factory.last().establish();
    factory.last().receive({ type: "error", request_id: null, error: { code: "INVALID_MESSAGE_FORMAT", message: "bad", details: {} } });
    assert.equal(react.result.error.code, "INVALID_MESSAGE_FORMAT");
    assert.equal(errors.length, 1);

    react.setProps({ ...options, token: "new-token" });
    assert.equal(factory.sockets.length, 1);
    assert.deepEqual(factory.last().sent().at(-1), { type: "auth.refresh", id: "auth-refresh-1", token: "new-token" });

    react.setProps({ ...options, token: "new-token", url: "ws://test.com/ws/trips/2/" });
    assert.equal(factory.sockets.length, 2);
    assert.equal(factory.sockets[0].close.mock.callCount(), 1);
    factory.last().open();
    assert.deepEqual(factory.last().sent(), [{ token: "new-token" }]);

    react.unmount();
    assert.equal(factory.last().close.mock.callCount(), 1);
  });

  it("reconnect and disconnect act on the connection; offline/online reach the state", () => {
    const react = tinyReact();
    const useWs = createUseWebSocket(react.React);
    const win = fakeWindow();
    const { factory, options } = hookOptions({ window: win });
    react.mount(useWs, options);
    factory.last().establish();
    win.dispatchEvent(new Event("offline"));
    assert.equal(react.result.connectionState, "reconnecting");
    win.dispatchEvent(new Event("online"));
    factory.last().establish();
    assert.equal(react.result.connectionState, "connected");
    react.result.disconnect();
    assert.equal(react.result.connectionState, "disconnected");
    react.result.reconnect();
    assert.equal(react.result.connectionState, "connecting");
    assert.equal(factory.sockets.length, 3);
  });

  it("useWebSocket uses globalThis.React when present, and says so when absent", () => {
    assert.throws(() => useWebSocket({ url: "ws://x" }), /needs React/);
    const react = tinyReact();
    globalThis.React = react.React;
    try {
      const { factory, options } = hookOptions();
      react.mount(useWebSocket, options);
      assert.equal(factory.sockets.length, 1);
      react.unmount();
    } finally {
      delete globalThis.React;
    }
  });
});

describe("useWebSocketConnection (Vue)", () => {
  it("sets the error ref (the seed's callback parameter shadowed it)", () => {
    const vue = tinyVue();
    const useWs = createUseWebSocketConnection(vue.Vue);
    const { factory, options } = hookOptions();
    const result = useWs(options);
    vue.mount();
    const promiseError = factory.last();
    promiseError.fail(new Error("Connection failed"));
    assert.ok(result.error.value instanceof Error);
    assert.equal(result.error.value.message, "Connection failed");
    assert.equal(result.error.value.code, "CONNECTION_FAILED");
    assert.equal(result.error.value.value, undefined); // nothing written onto the Error
    assert.throws(() => {
      result.error.value = null;
    }, /readonly/);
  });

  it("follows the connection: state, lastMessage, send, token refresh, url change, unmount", () => {
    const vue = tinyVue();
    const useWs = createUseWebSocketConnection(vue.Vue);
    const { factory, options } = hookOptions();
    const opts = { ...options };
    const result = useWs(opts);
    assert.equal(result.connectionState.value, "disconnected");
    assert.equal(factory.sockets.length, 0);
    vue.mount();
    assert.equal(result.connectionState.value, "connecting");
    factory.last().establish();
    assert.equal(result.connectionState.value, "connected");
    factory.last().receive({ type: "trip.snapshot", seq: 3 });
    assert.equal(result.lastMessage.value.type, "trip.snapshot");
    assert.equal(result.sendMessage({ type: "echo", data: 2 }), "sent");

    opts.token = "t2";
    vue.flush();
    assert.deepEqual(factory.last().sent().at(-1), { type: "auth.refresh", id: "auth-refresh-1", token: "t2" });
    assert.equal(factory.sockets.length, 1);

    opts.url = "ws://test.com/ws/trips/2/";
    vue.flush();
    assert.equal(factory.sockets.length, 2);
    assert.equal(factory.sockets[1].url, "ws://test.com/ws/trips/2/");

    vue.unmount();
    assert.equal(factory.sockets[1].close.mock.callCount(), 1);
  });

  it("useWebSocketConnection uses globalThis.Vue when present, and says so when absent", () => {
    assert.throws(() => useWebSocketConnection({ url: "ws://x" }), /needs Vue/);
    const vue = tinyVue();
    globalThis.Vue = vue.Vue;
    try {
      const { factory, options } = hookOptions();
      useWebSocketConnection(options);
      vue.mount();
      assert.equal(factory.sockets.length, 1);
    } finally {
      delete globalThis.Vue;
    }
  });
});
