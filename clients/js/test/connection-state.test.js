// ConnectionState: the seed's state names as a frozen object, and every state the connection and
// the lifecycle manager (what the seed's React hook and Vue composable listen to) report is one
// of its values.
import { describe, it } from "node:test";
import assert from "node:assert/strict";

import * as client from "../index.js";
import { ConnectionState, WebSocketConnection } from "../websocket-connection.js";
import { ConnectionLifecycleManager } from "../lifecycle.js";
import { fakeOptions, fakeWindow } from "./helpers.js";

/** Drive a connection through every state it has: opening, established, dropped and
 * reconnecting, offline, replaced, refused with 4001, disconnected. Returns the states seen by
 * the connection (its `state` right after construction, then each `stateChange`) and by a
 * lifecycle manager, and each `stateChange`'s `previous`. */
function everyState() {
  const { factory, clock, options } = fakeOptions();
  const win = fakeWindow();
  const connection = new WebSocketConnection(options);
  const lifecycle = new ConnectionLifecycleManager(connection, { window: win });
  const seen = { connection: [connection.state], lifecycle: [lifecycle.state], previous: [] };
  connection.on("stateChange", (state, previous) => {
    seen.connection.push(state);
    seen.previous.push(previous);
  });
  lifecycle.on("stateChange", (state, previous) => {
    seen.lifecycle.push(state);
    seen.previous.push(previous);
  });

  connection.connect();
  factory.last().establish();
  factory.last().serverClose(1006); // dropped: reconnecting after a backoff
  clock.advance(1000);
  factory.last().establish();
  win.dispatchEvent(new Event("offline"));
  win.dispatchEvent(new Event("online"));
  factory.last().establish();
  connection.reconnect();
  factory.last().establish();
  connection.disconnect();
  connection.connect();
  factory.last().open();
  factory.last().receive({ type: "error", request_id: null, error: { code: "AUTHENTICATION_FAILED", message: "bad token", details: {} } });
  factory.last().serverClose(4001);
  return { seen, connection, lifecycle };
}

describe("ConnectionState", () => {
  it("names the seed's four states, frozen", () => {
    assert.deepEqual(
      { ...ConnectionState },
      { DISCONNECTED: "disconnected", CONNECTING: "connecting", CONNECTED: "connected", RECONNECTING: "reconnecting" },
    );
    assert.ok(Object.isFrozen(ConnectionState));
    assert.throws(() => {
      ConnectionState.CONNECTED = "open"; // a module is strict: writing a frozen property throws
    }, TypeError);
    assert.equal(client.ConnectionState, ConnectionState, "index.js exports the same object");
  });

  it("every state the connection and the lifecycle manager report is one of its values, and each is reported", () => {
    const { seen, connection, lifecycle } = everyState();
    const names = new Set(Object.values(ConnectionState));
    for (const [who, states] of Object.entries(seen)) {
      for (const state of states) assert.ok(names.has(state), `${who} reported ${JSON.stringify(state)}`);
    }
    // The drive above went through all four, seen both ways.
    assert.deepEqual(new Set(seen.connection), names);
    assert.deepEqual(new Set(seen.lifecycle), names);
    assert.equal(connection.state, ConnectionState.DISCONNECTED);
    assert.equal(lifecycle.state, ConnectionState.DISCONNECTED);
  });
});
