// Test doubles: a fake WebSocket (as in the seed's Jest tests), a manual clock, a tiny React
// and a tiny Vue. No npm packages.
import { mock } from "node:test";

/** A WebSocket constructor whose instances are recorded; each instance is a plain object with
 * `send`/`close` mocks and on* handler slots, like the seed's mockWebSocket, plus helpers to
 * play the server: open(), receive(obj), serverClose(code, reason), fail(error). */
export function fakeWebSocketFactory() {
  const sockets = [];
  const WebSocket = mock.fn(function FakeWebSocket(url) {
    const ws = {
      url,
      readyState: 0,
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
      send: mock.fn(),
      close: mock.fn((code, reason) => {
        ws.readyState = 3;
        ws.closedWith = { code, reason };
      }),
      sent() {
        return ws.send.mock.calls.map((call) => JSON.parse(call.arguments[0]));
      },
      open() {
        ws.readyState = 1;
        ws.onopen?.({ type: "open" });
      },
      receive(message) {
        ws.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
      },
      establish(extra = {}) {
        ws.open();
        ws.receive({ type: "connection.established", id: "e1", connection_id: "c1", heartbeat_interval: 30, ...extra });
      },
      serverClose(code = 1006, reason = "") {
        ws.readyState = 3;
        ws.onclose?.({ code, reason, wasClean: code === 1000 });
      },
      fail(error = { type: "error" }) {
        ws.onerror?.(error);
      },
    };
    sockets.push(ws);
    return ws;
  });
  return { WebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** A manual clock: setTimeout/clearTimeout/now to inject; advance(ms) runs what is due. */
export function fakeClock(start = 1_000_000) {
  let now = start;
  let nextId = 1;
  const timers = new Map();
  const clock = {
    now: () => now,
    setTimeout: (fn, ms = 0) => {
      const id = nextId++;
      timers.set(id, { fn, at: now + Math.max(0, ms) });
      return id;
    },
    clearTimeout: (id) => {
      timers.delete(id);
    },
    pending: () => [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let due = null;
        for (const [id, timer] of timers) {
          if (timer.at <= end && (due === null || timer.at < due[1].at)) due = [id, timer];
        }
        if (due === null) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
  };
  return clock;
}

/** Connection options using the fakes. */
export function fakeOptions(extra = {}) {
  const factory = fakeWebSocketFactory();
  const clock = fakeClock();
  return {
    factory,
    clock,
    options: {
      url: "ws://test.com",
      token: "test-token",
      reconnectAttempts: 3,
      heartbeatInterval: 30000,
      WebSocket: factory.WebSocket,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      now: clock.now,
      random: () => 0.5,
      ...extra,
    },
  };
}

/** An EventTarget standing in for `window`. */
export function fakeWindow() {
  const target = new EventTarget();
  target.navigator = { onLine: true };
  return target;
}

/** A minimal React: one component instance, hooks by call order, effects run after render
 * when their deps change, cleanups on re-run and unmount. */
export function tinyReact() {
  let hooks = [];
  let index = 0;
  let pendingEffects = [];
  let component = null;
  let props = null;
  let result = null;
  let rendering = false;
  let dirty = false;

  const React = {
    useState(initial) {
      const i = index++;
      if (!(i in hooks)) hooks[i] = { value: typeof initial === "function" ? initial() : initial };
      const slot = hooks[i];
      const set = (value) => {
        const next = typeof value === "function" ? value(slot.value) : value;
        if (Object.is(next, slot.value)) return;
        slot.value = next;
        if (rendering) dirty = true;
        else api.render();
      };
      return [slot.value, set];
    },
    useRef(initial) {
      const i = index++;
      if (!(i in hooks)) hooks[i] = { current: initial };
      return hooks[i];
    },
    useCallback(fn, deps) {
      const i = index++;
      const slot = hooks[i];
      if (slot && sameDeps(slot.deps, deps)) return slot.fn;
      hooks[i] = { fn, deps };
      return fn;
    },
    useEffect(effect, deps) {
      const i = index++;
      const slot = hooks[i];
      if (slot && sameDeps(slot.deps, deps)) return;
      pendingEffects.push(() => {
        slot?.cleanup?.();
        const next = { deps, cleanup: undefined };
        hooks[i] = next;
        next.cleanup = effect();
      });
      if (!slot) hooks[i] = { deps: undefined };
    },
  };

  function sameDeps(a, b) {
    return !!a && !!b && a.length === b.length && a.every((v, k) => Object.is(v, b[k]));
  }

  const api = {
    React,
    mount(fn, initialProps) {
      component = fn;
      props = initialProps;
      return api.render();
    },
    setProps(next) {
      props = next;
      return api.render();
    },
    render() {
      do {
        dirty = false;
        rendering = true;
        index = 0;
        result = component(props);
        // Effects run after the render; state set meanwhile re-renders once they are done.
        const effects = pendingEffects;
        pendingEffects = [];
        for (const run of effects) run();
        rendering = false;
      } while (dirty);
      return result;
    },
    get result() {
      return result;
    },
    unmount() {
      for (const slot of hooks) slot?.cleanup?.();
      hooks = [];
    },
  };
  return api;
}

/** A minimal Vue 3: refs, readonly, lifecycle hooks, watch (synchronous, on demand). */
export function tinyVue() {
  const mounted = [];
  const unmounted = [];
  const watchers = [];
  const Vue = {
    ref: (value) => ({ value, __isRef: true }),
    readonly: (target) =>
      new Proxy(target, {
        set() {
          throw new TypeError("readonly");
        },
      }),
    onMounted: (fn) => mounted.push(fn),
    onUnmounted: (fn) => unmounted.push(fn),
    watch: (source, callback) => {
      const watcher = { source, callback, last: source() };
      watchers.push(watcher);
    },
  };
  return {
    Vue,
    mount: () => mounted.forEach((fn) => fn()),
    unmount: () => unmounted.forEach((fn) => fn()),
    /** Re-evaluate the watch sources (after options changed) and run changed callbacks. */
    flush: () => {
      for (const watcher of watchers) {
        const value = watcher.source();
        if (!Object.is(value, watcher.last)) {
          const old = watcher.last;
          watcher.last = value;
          watcher.callback(value, old);
        }
      }
    },
  };
}
