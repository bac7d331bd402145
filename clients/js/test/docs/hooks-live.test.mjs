// The seed's React hook and Vue composable as docs/client.md prints them ("The seed's hook and
// composable, as printed"): each block is taken from the page by the `<!-- tested: NAME -->`
// line before its fence, checked against the seed's text (seed-*.ts here), type-checked, stripped
// of its types by Babel into a module inside the package, and run in Node against a live server:
// React 19 (react-dom/client on a jsdom document, under act) and Vue 3 (createApp on a jsdom
// element). The package's own hook and composable run through the same scenarios.
//
// The first three tests need no server. The live ones are skipped unless TRIPSAGE_WS_URL,
// TRIPSAGE_TOKEN and TRIPSAGE_TRIP_ID are set (tests/clients/test_js_doc_hooks.py sets them, and
// TRIPSAGE_TRIP_IDS: a trip of its own for each mount, so that no other socket's presence
// follows the snapshot). By hand, against a running server (Node 20 needs its WebSocket):
//   TRIPSAGE_WS_URL=ws://127.0.0.1:8765 TRIPSAGE_TOKEN=... TRIPSAGE_TRIP_ID=1 \
//     node --experimental-websocket --test clients/js/test/docs/hooks-live.test.mjs
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { JSDOM } from "jsdom";

import { ConnectionState } from "../../index.js";
import { skip, token, tripId, tripUrl } from "../live-env.mjs";
import {
  FIX_1,
  FIX_2,
  PACKAGE,
  PACKAGE_NAME,
  blockFolder,
  codeBody,
  docBlock,
  replaceOnce,
  seedBlock,
  seedOptionsInterface,
  splitImports,
  stripTypes,
} from "./doc-blocks.mjs";

const seedReact = seedBlock("seed-use-websocket.ts");
const seedVue = seedBlock("seed-use-websocket-connection.ts");
const seedOptions = seedOptionsInterface(seedReact);

/** The import statement of the docs' Vue block that brings the package's classes: what the
 * seed's composable is run with, as printed and with Fix 1 only. */
function packageImport(code) {
  const found = splitImports(code).imports.filter((i) => i.from === PACKAGE_NAME);
  assert.equal(found.length, 1, `one import from ${PACKAGE_NAME}`);
  return found[0].statement;
}

/** The seed's composable with the docs' added lines (the package import and the seed's options
 * interface) and the given fixes applied. */
function seedComposable(docVue, { fix1 = false, fix2 = false } = {}) {
  let code = seedVue;
  if (fix1) code = replaceOnce(code, FIX_1.before, FIX_1.after);
  if (fix2) code = replaceOnce(code, FIX_2.before, FIX_2.after);
  return `${packageImport(docVue)}\n\n${seedOptions}\n${code}`;
}

describe("docs/client.md prints the seed's hook and composable", () => {
  it("the React block is the seed's useWebSocket, with only import lines added", () => {
    const code = docBlock("react-hook");
    assert.equal(codeBody(code), codeBody(seedReact));
    assert.deepEqual(splitImports(seedReact).imports, [], "the seed's block imports nothing");
    for (const { from } of splitImports(code).imports) {
      assert.ok(["react", PACKAGE_NAME].includes(from), `an import from ${from}`);
    }
    assert.match(code, /^export function useWebSocket\(/m);
  });

  it("the Vue block is the seed's useWebSocketConnection with its options interface, import lines and exactly the two fixes", () => {
    const code = docBlock("vue-composable");
    // Everything but the imports: the seed's interface and composable, with Fix 2.
    assert.equal(codeBody(code), codeBody(`${seedOptions}\n${replaceOnce(seedVue, FIX_2.before, FIX_2.after)}`));
    // The imports: the seed's from "vue" plus `readonly` (Fix 1); the rest from the package.
    const seedFromVue = splitImports(seedVue).imports.find((i) => i.from === "vue");
    const docFromVue = splitImports(code).imports.filter((i) => i.from === "vue");
    assert.equal(docFromVue.length, 1);
    assert.equal(docFromVue[0].statement, FIX_1.after);
    assert.deepEqual(new Set(docFromVue[0].names), new Set([...seedFromVue.names, "readonly"]));
    for (const { from } of splitImports(code).imports) {
      assert.ok(["vue", PACKAGE_NAME].includes(from), `an import from ${from}`);
    }
    assert.match(code, /^export function useWebSocketConnection\(/m);
  });

  it("both blocks type-check (tsc --strict) against the package's declarations; the seed's composable fails on its two bugs", () => {
    const folder = blockFolder();
    try {
      const docVue = docBlock("vue-composable");
      folder.write("react-hook.ts", docBlock("react-hook"));
      folder.write("vue-composable.ts", docVue);
      folder.write("seed-composable.ts", seedComposable(docVue));
      folder.write(
        "tsconfig.json",
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            target: "es2022",
            module: "nodenext",
            moduleResolution: "nodenext",
            lib: ["es2022", "dom"],
            types: [],
            skipLibCheck: true, // the package's declarations are checked by tsc -p clients/js
          },
          files: ["react-hook.ts", "vue-composable.ts", "seed-composable.ts"],
        }),
      );
      const tsc = spawnSync(join(PACKAGE, "node_modules", ".bin", "tsc"), ["-p", folder.dir, "--pretty", "false"], {
        encoding: "utf8",
        timeout: 120000,
      });
      assert.equal(tsc.error, undefined, String(tsc.error));
      const output = tsc.stdout + tsc.stderr;
      const errors = [...output.matchAll(/([\w-]+\.ts)\(\d+,\d+\): error TS\d+: (.*)$/gm)].map((m) => `${m[1]}: ${m[2]}`);
      assert.deepEqual(
        [...new Set(errors)].sort(),
        [
          "seed-composable.ts: Cannot find name 'readonly'.", // Fix 1
          "seed-composable.ts: Property 'value' does not exist on type 'Error'.", // Fix 2
        ],
        output,
      );
    } finally {
      folder.remove();
    }
  });
});

// -- live --------------------------------------------------------------------------------------

const BAD_TOKEN = "not-a-valid-token";
const WAIT_MS = 20000; // for one expected change; a test fails by not seeing it, never by its time
const tripIds = (process.env.TRIPSAGE_TRIP_IDS || tripId || "").split(",").filter(Boolean);
let nextTrip = 0;
const STATES = new Set(Object.values(ConnectionState));

/** Every WebSocket opened in this process, with the code it closed with (null while open). */
const sockets = [];

/** Poll `check` until it returns something truthy (returned); fail with `what` after WAIT_MS.
 * `tick` waits between checks (React's runs inside act). */
async function eventually(what, check, tick = () => new Promise((resolve) => setTimeout(resolve, 20)), show = () => "") {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`not seen: ${what}${show()}`);
    await tick();
  }
}

/** What a component shows: state | last message's type | error code. */
function display(connectionState, lastMessage, error) {
  return `${connectionState} | ${lastMessage?.type ?? "no message"} | ${error ? (error.code ?? error.message) : "no error"}`;
}

describe("live: the hook and the composable against the server", { skip }, () => {
  let dom;
  let folder;
  let React;
  let createRoot;
  let Vue;
  const hooks = {};
  const reactWarnings = [];

  before(async () => {
    // A DOM for react-dom and Vue, set before they load (Vue's runtime-dom reads `document` then).
    dom = new JSDOM("<!doctype html><html><body></body></html>", { url: "http://127.0.0.1/" });
    globalThis.window = dom.window;
    globalThis.document = dom.window.document;
    globalThis.navigator ??= dom.window.navigator;
    // Vue's mount() asks whether the container is an SVGElement (or a MathMLElement).
    for (const name of ["Node", "Element", "HTMLElement", "SVGElement", "MathMLElement"]) {
      if (!(name in globalThis) && dom.window[name]) globalThis[name] = dom.window[name];
    }
    globalThis.IS_REACT_ACT_ENVIRONMENT = true;
    // Node's own WebSocket (not jsdom's), recorded.
    const Base = globalThis.WebSocket;
    globalThis.WebSocket = class TrackedWebSocket extends Base {
      constructor(...args) {
        super(...args);
        this.closeCode = null;
        sockets.push(this);
        this.addEventListener("close", (event) => {
          this.closeCode = event.code;
        });
      }
    };
    const consoleError = console.error;
    console.error = (...args) => {
      if (/not wrapped in act|act\(/.test(String(args[0]))) reactWarnings.push(String(args[0]));
      consoleError(...args);
    };

    React = await import("react");
    ({ createRoot } = await import("react-dom/client"));
    Vue = await import("vue");

    // The blocks as printed, types stripped, as modules inside the package.
    folder = blockFolder();
    const docVue = docBlock("vue-composable");
    const load = async (name, ts) => import(pathToFileURL(folder.write(`${name}.mjs`, stripTypes(ts, `${name}.ts`))).href);
    const { createUseWebSocket } = await import(`${PACKAGE_NAME}/react`);
    const { createUseWebSocketConnection } = await import(`${PACKAGE_NAME}/vue`);
    hooks.docReact = (await load("react-hook", docBlock("react-hook"))).useWebSocket;
    hooks.docVue = (await load("vue-composable", docVue)).useWebSocketConnection;
    hooks.seedVue = (await load("seed-composable", seedComposable(docVue))).useWebSocketConnection;
    hooks.seedVueFix1 = (await load("seed-composable-fix-1", seedComposable(docVue, { fix1: true }))).useWebSocketConnection;
    hooks.packageReact = createUseWebSocket(React);
    hooks.packageVue = createUseWebSocketConnection(Vue);
    for (const [name, hook] of Object.entries(hooks)) {
      assert.equal(typeof hook, "function", `${name} is not a function: is the block's export renamed?`);
    }
  });

  after(() => {
    folder?.remove();
    dom?.window.close();
  });

  /** Render a component using the hook with react-dom, under act. */
  async function mountReact(useHook, options) {
    const container = document.createElement("div");
    document.body.append(container);
    const root = createRoot(container);
    const states = [];
    let latest = null;
    let mounted = true;
    function Probe() {
      latest = useHook(options);
      states.push(latest.connectionState);
      return React.createElement("output", null, display(latest.connectionState, latest.lastMessage, latest.error));
    }
    await React.act(async () => root.render(React.createElement(Probe)));
    const handle = {
      states,
      setupErrors: [],
      get view() {
        return { connectionState: latest.connectionState, lastMessage: latest.lastMessage, error: latest.error };
      },
      text: () => container.textContent,
      call: (name, ...args) => React.act(async () => latest[name](...args)),
      until: (what, check) =>
        eventually(
          what,
          () => check(handle.view),
          () => React.act(() => new Promise((resolve) => setTimeout(resolve, 20))),
          () => `; the component shows "${container.textContent}"`,
        ),
      async unmount() {
        if (!mounted) return;
        mounted = false;
        await React.act(async () => root.unmount());
        container.remove();
      },
    };
    return handle;
  }

  /** Mount a component using the composable with Vue's createApp on a jsdom element. */
  async function mountVue(useComposable, options) {
    const { createApp, h, nextTick, toRaw, watch } = Vue;
    const el = document.createElement("div");
    document.body.append(el);
    const states = [];
    const setupErrors = [];
    let result = null;
    let mounted = true;
    const app = createApp({
      setup() {
        result = useComposable(options);
        states.push(result.connectionState.value);
        watch(result.connectionState, (state) => states.push(state), { flush: "sync" });
        return () => h("output", null, display(result.connectionState.value, result.lastMessage.value, result.error.value));
      },
    });
    app.config.errorHandler = (error) => setupErrors.push(error);
    app.config.warnHandler = () => {}; // a component whose setup threw has no render function
    app.mount(el);
    const handle = {
      states,
      setupErrors,
      get view() {
        if (!result) return null;
        return {
          connectionState: result.connectionState.value,
          lastMessage: toRaw(result.lastMessage.value),
          error: toRaw(result.error.value),
        };
      },
      text: () => el.textContent,
      async call(name, ...args) {
        result[name](...args);
        await nextTick();
      },
      async until(what, check) {
        if (!result) throw new Error(`${what}: the component's setup() failed: ${setupErrors[0]}`);
        const found = await eventually(what, () => check(handle.view), undefined, () => `; the component shows "${el.textContent}"`);
        await nextTick(); // the DOM shows it too
        return found;
      },
      async unmount() {
        if (!mounted) return;
        mounted = false;
        app.unmount();
        el.remove();
      },
    };
    return handle;
  }

  /** Connect, snapshot, edit and ack, the server drops the socket, disconnect(), reconnect(),
   * unmount: what a component using the hook sees at each step. */
  async function lifecycleScenario(mount, useHook, label) {
    const trip = tripIds[nextTrip++ % tripIds.length];
    const messages = [];
    const errors = [];
    const first = sockets.length;
    const mine = () => sockets.slice(first);
    const hook = await mount(useHook, {
      url: tripUrl(trip),
      token,
      onMessage: (message) => messages.push(message),
      onError: (error) => errors.push(error),
    });
    try {
      // Connected; the trip's snapshot is the last message.
      await hook.until("state connected", (v) => v.connectionState === "connected");
      const snapshot = await hook.until("the trip.snapshot as lastMessage", (v) => v.lastMessage?.type === "trip.snapshot" && v.lastMessage);
      assert.equal(String(snapshot.trip.id), String(trip));
      assert.equal(snapshot, messages.at(-1), "onMessage got it too");
      assert.equal(hook.text(), "connected | trip.snapshot | no error");
      assert.equal(mine().length, 1);

      // sendMessage a trip.update: the server's ack.
      const updateId = randomUUID();
      const value = `Edited by ${label} (docs/client.md) ${updateId}`;
      await hook.call("sendMessage", { type: "trip.update", id: updateId, update_id: updateId, field: "notes", value, base_version: snapshot.trip.version });
      const answer = await hook.until("the trip.update's answer", () => messages.find((m) => (m.type === "ack" && m.update_id === updateId) || (m.type === "error" && m.request_id === updateId)));
      assert.equal(answer.type, "ack", JSON.stringify(answer));
      assert.equal(answer.status, "applied");
      assert.equal(answer.value, value);
      await hook.until("lastMessage is the newest message", (v) => v.lastMessage === messages.at(-1));

      // The server drops the socket (a frame over daphne's 1 MiB limit): the hook reconnects.
      const dropped = mine().at(-1);
      const seen = messages.length;
      await hook.call("sendMessage", { type: "echo", data: "x".repeat(1_100_000) });
      await hook.until("the server closed the socket", () => dropped.closeCode !== null);
      assert.notEqual(dropped.closeCode, 1000);
      await hook.until(
        "connected again on a new socket, with a new snapshot",
        (v) => v.connectionState === "connected" && mine().length >= 2 && messages.slice(seen).some((m) => m.type === "trip.snapshot"),
      );

      // disconnect(): disconnected, the socket closed by the client.
      await hook.call("disconnect");
      await hook.until("state disconnected", (v) => v.connectionState === "disconnected");
      assert.match(hook.text(), /^disconnected \|/);
      const closed = mine().at(-1);
      await hook.until("the socket closed after disconnect()", () => closed.closeCode !== null);
      assert.equal(closed.closeCode, 1000);

      // reconnect(): connected again, on a new socket.
      const count = mine().length;
      await hook.call("reconnect");
      await hook.until("connected after reconnect()", (v) => v.connectionState === "connected" && mine().length === count + 1);
      assert.match(hook.text(), /^connected \|/);
      assert.deepEqual(errors, []);
      assert.equal(hook.view.error, null);

      // Unmount: the socket is closed (1000), and no other is left open.
      const last = mine().at(-1);
      await hook.unmount();
      await eventually("the socket closed after unmount", () => last.closeCode !== null);
      assert.equal(last.closeCode, 1000);
      assert.deepEqual(mine().filter((ws) => ws.readyState !== WebSocket.CLOSED), []);

      // Every state the component saw is one of ConnectionState's, and it saw the main ones.
      for (const state of hook.states) assert.ok(STATES.has(state), `state ${JSON.stringify(state)}`);
      for (const state of ["disconnected", "connected"]) assert.ok(hook.states.includes(state), state);
      assert.deepEqual(reactWarnings, []);
    } finally {
      await hook.unmount();
    }
  }

  /** A bad token: `error` is set (AUTHENTICATION_FAILED), the state is disconnected, no retry. */
  async function badTokenScenario(mount, useHook) {
    const errors = [];
    const first = sockets.length;
    const hook = await mount(useHook, { url: tripUrl(tripIds[0]), token: BAD_TOKEN, onError: (error) => errors.push(error) });
    try {
      const error = await hook.until("error set", (v) => v.error);
      assert.ok(error instanceof Error);
      assert.equal(error.code, "AUTHENTICATION_FAILED");
      assert.ok(errors.includes(error), "onError got the same error");
      await hook.until("state disconnected", (v) => v.connectionState === "disconnected");
      assert.equal(hook.text(), "disconnected | error | AUTHENTICATION_FAILED");
      assert.equal(sockets.length - first, 1, "refused: not retried with the same token");
    } finally {
      await hook.unmount();
    }
  }

  const variants = [
    ["the docs' React hook (the seed's)", () => mountReact, "docReact"],
    ["the package's useWebSocket (createUseWebSocket(React))", () => mountReact, "packageReact"],
    ["the docs' Vue composable (the seed's, fixed)", () => mountVue, "docVue"],
    ["the package's useWebSocketConnection (createUseWebSocketConnection(Vue))", () => mountVue, "packageVue"],
  ];
  for (const [label, mounter, key] of variants) {
    it(`${label}: connected, snapshot, edit acked, server drop, disconnect(), reconnect(), unmount`, { timeout: 120000 }, () =>
      lifecycleScenario(mounter(), hooks[key], label),
    );
    it(`${label}: a bad token sets error`, { timeout: 60000 }, () => badTokenScenario(mounter(), hooks[key]));
  }

  it("the seed's composable as printed: setup() throws ReferenceError, readonly is not defined (Fix 1)", { timeout: 60000 }, async () => {
    const hook = await mountVue(hooks.seedVue, { url: tripUrl(tripIds[0]), token: BAD_TOKEN });
    try {
      assert.equal(hook.setupErrors.length, 1);
      assert.ok(hook.setupErrors[0] instanceof ReferenceError, String(hook.setupErrors[0]));
      assert.equal(hook.setupErrors[0].message, "readonly is not defined");
      assert.equal(hook.view, null, "the component got nothing from it");
      assert.equal(hook.text(), "");
    } finally {
      await hook.unmount();
    }
  });

  it("the seed's composable with Fix 1 only: a bad token leaves error null, the Error gets the value (Fix 2)", { timeout: 60000 }, async () => {
    const errors = [];
    const hook = await mountVue(hooks.seedVueFix1, { url: tripUrl(tripIds[0]), token: BAD_TOKEN, onError: (error) => errors.push(error) });
    try {
      await hook.until("onError called and state disconnected", (v) => errors.length > 0 && v.connectionState === "disconnected");
      assert.equal(errors[0].code, "AUTHENTICATION_FAILED");
      assert.equal(hook.view.error, null, "the composable's error ref stays null");
      assert.equal(errors[0].value, errors[0], "`error.value = error` wrote onto the Error");
      assert.equal(hook.text(), "disconnected | error | no error");
    } finally {
      await hook.unmount();
    }
  });
});
