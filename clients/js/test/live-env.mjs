// What the live tests (integration/, live-metrics/, docs/hooks-live.test.mjs) share: the server
// and credentials tests/jsnode.py sets for them, why a test is skipped without them, the socket
// URLs, and how they wait for a message. Not a test file: it lies outside the folders those runs
// give node --test (run-tests.sh takes test/*.test.js only).
export const {
  TRIPSAGE_WS_URL: base,
  TRIPSAGE_HTTP_URL: http,
  TRIPSAGE_TOKEN: token,
  TRIPSAGE_TRIP_ID: tripId,
} = process.env;

const REQUIRED = ["TRIPSAGE_WS_URL", "TRIPSAGE_TOKEN", "TRIPSAGE_TRIP_ID"];

/** Why a live test is skipped: one of its variables (the three above, then `more`) is unset, or
 * there is no global WebSocket; false when it can run. */
export function skipWithout(...more) {
  const names = [...REQUIRED, ...more];
  if (names.some((name) => !process.env[name])) {
    return `set ${names.slice(0, -1).join(", ")} and ${names.at(-1)} to run against a live server`;
  }
  return typeof globalThis.WebSocket !== "function" ? "no global WebSocket: run with node --experimental-websocket" : false;
}

export const skip = skipWithout();

/** The server's URL for `path` (ws:// from TRIPSAGE_WS_URL, or http:// from TRIPSAGE_HTTP_URL). */
export const socketUrl = (path) => `${(base ?? "").replace(/\/+$/, "")}${path}`;
export const httpUrl = (path) => `${(http ?? "").replace(/\/+$/, "")}${path}`;

/** The trip's collaboration socket (TRIPSAGE_TRIP_ID's unless another is named). */
export const tripUrl = (id = tripId) => socketUrl(`/ws/trips/${id}/`);

function waitFor(emitter, event, predicate, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const off = emitter.on(event, (value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** The first `event` of `emitter` whose argument matches `predicate` (listening starts now). */
export function when(emitter, event, predicate = () => true, timeoutMs = 10000) {
  return waitFor(emitter, event, predicate, timeoutMs, event);
}

/** The next message of `connection` matching `predicate` (listening starts now). */
export function next(connection, predicate, timeoutMs = 10000) {
  return waitFor(connection, "message", predicate, timeoutMs, `a message (${predicate})`);
}
