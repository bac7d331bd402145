// The seed's WebSocketErrorHandler and WebSocketRateLimiter (websocket-integration-guide.md,
// "Error Handling Best Practices" and "Client-Side Rate Limiting"), copied with the types
// stripped, fed the same inputs as ours: ours must return the seed's fields with the seed's
// values (units included). Ours may add fields (retryAfterMs, code, serverMessage), never change
// the seed's.
//
// Edits to the seed's code, each marked "EDIT" at its place:
// 1. TypeScript types, `private` and the field type annotations removed; the interfaces
//    ErrorContext and ErrorRecoveryAction dropped (types only).
// 2. `localStorage` (absent in Node) is a stub passed to the constructor and recorded.
// 3. `console.error` is a logger passed to the constructor and recorded (no test output).
// 4. `Date.now()` is a clock passed to the constructor, so the test moves time.
import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { WebSocketErrorHandler } from "../error-handler.js";
import { WebSocketRateLimiter } from "../rate-limiter.js";

// ---- the seed's classes ----------------------------------------------------------------------

class SeedWebSocketErrorHandler {
  // EDIT 2, 3: localStorage and console come in through the constructor.
  constructor(localStorage, console) {
    this.localStorage = localStorage;
    this.console = console;
    this.errorCounts = new Map();
    this.maxRetries = 3;
  }

  handleError(error, context) {
    const errorCode = error.code || "UNKNOWN_ERROR";
    const currentCount = this.errorCounts.get(errorCode) || 0;

    switch (errorCode) {
      case "AUTHENTICATION_FAILED":
        return this.handleAuthError(error, context);

      case "RATE_LIMIT_EXCEEDED":
        return this.handleRateLimitError(error, context);

      case "NETWORK_ERROR":
        return this.handleNetworkError(error, context, currentCount);

      case "SERVER_ERROR":
        return this.handleServerError(error, context, currentCount);

      default:
        return this.handleUnknownError(error, context);
    }
  }

  handleAuthError(error, context) {
    // Clear invalid tokens
    this.clearStoredTokens();

    // Redirect to login or refresh token
    if (context.canRefreshToken) {
      return { action: "refresh_token", retryAfter: 0 };
    } else {
      return { action: "redirect_login", retryAfter: 0 };
    }
  }

  handleRateLimitError(error, context) {
    const retryAfter = error.details?.retry_after || 60;
    return { action: "retry", retryAfter };
  }

  handleNetworkError(error, context, retryCount) {
    if (retryCount < this.maxRetries) {
      this.errorCounts.set("NETWORK_ERROR", retryCount + 1);
      const retryAfter = Math.min(1000 * Math.pow(2, retryCount), 30000);
      return { action: "retry", retryAfter };
    } else {
      return { action: "fail", message: "Network connection failed" };
    }
  }

  handleServerError(error, context, retryCount) {
    if (retryCount < this.maxRetries && error.details?.retryable !== false) {
      this.errorCounts.set("SERVER_ERROR", retryCount + 1);
      const retryAfter = 1000 * Math.pow(2, retryCount);
      return { action: "retry", retryAfter };
    } else {
      return { action: "fail", message: "Server error occurred" };
    }
  }

  handleUnknownError(error, context) {
    this.console.error("Unknown WebSocket error:", error); // EDIT 3
    return { action: "fail", message: "An unexpected error occurred" };
  }

  clearStoredTokens() {
    this.localStorage.removeItem("auth_token"); // EDIT 2
    this.localStorage.removeItem("refresh_token"); // EDIT 2
  }
}

class SeedWebSocketRateLimiter {
  // EDIT 4: the clock comes in through the constructor.
  constructor(clock) {
    this.clock = clock;
    this.messageCounts = new Map();
    this.limits = new Map();
    // Set default limits
    this.limits.set("chat", { limit: 120, window: 60000 });
    this.limits.set("agent_status", { limit: 60, window: 60000 });
    this.limits.set("trip_collaboration", { limit: 300, window: 60000 });
    this.limits.set("notifications", { limit: 30, window: 60000 });
  }

  canSendMessage(channelType) {
    const limit = this.limits.get(channelType);
    if (!limit) return true;

    const now = this.clock(); // EDIT 4
    const counts = this.messageCounts.get(channelType) || [];

    // Remove old messages outside the window
    const validCounts = counts.filter((timestamp) => now - timestamp < limit.window);

    // Check if under limit
    if (validCounts.length < limit.limit) {
      validCounts.push(now);
      this.messageCounts.set(channelType, validCounts);
      return true;
    }

    return false;
  }

  getTimeUntilNextMessage(channelType) {
    const limit = this.limits.get(channelType);
    if (!limit) return 0;

    const counts = this.messageCounts.get(channelType) || [];
    if (counts.length === 0) return 0;

    const now = this.clock(); // EDIT 4
    const oldestMessage = Math.min(...counts);
    const timeSinceOldest = now - oldestMessage;

    if (timeSinceOldest >= limit.window) return 0;

    return limit.window - timeSinceOldest;
  }

  getRemainingMessages(channelType) {
    const limit = this.limits.get(channelType);
    if (!limit) return Infinity;

    const counts = this.messageCounts.get(channelType) || [];
    const now = this.clock(); // EDIT 4

    // Count valid messages in current window
    const validCounts = counts.filter((timestamp) => now - timestamp < limit.window);

    return Math.max(0, limit.limit - validCounts.length);
  }
}

// ---- the table -------------------------------------------------------------------------------

const SEED_CODES = [
  "CONNECTION_FAILED", "AUTHENTICATION_FAILED", "AUTHORIZATION_FAILED", "RATE_LIMIT_EXCEEDED",
  "MESSAGE_TOO_LARGE", "INVALID_MESSAGE_FORMAT", "SERVER_ERROR", "NETWORK_ERROR",
];
const DETAILS = [
  ["no details", undefined],
  ["empty details", {}],
  ["retry_after 30", { retry_after: 30 }],
  ["retry_after 0.2", { retry_after: 0.2 }],
  ["retry_after 0", { retry_after: 0 }],
  ["retry_after 30, retryable false", { retry_after: 30, retryable: false }],
  ["the seed's rate-limit details", { limit: 120, remaining: 0, retry_after: 30, window_seconds: 60 }],
];

/** The seed's fields of `ours`, i.e. ours without the fields ours adds. */
function seedFields(ours, seed) {
  return Object.fromEntries(Object.keys(seed).map((key) => [key, ours[key]]));
}

function pair() {
  const seedLog = { storage: [], errors: [] };
  const ourLog = { storage: [], errors: [] };
  const stub = (log) => ({ removeItem: (key) => log.storage.push(key) });
  const logger = (log) => ({ error: (...args) => log.errors.push(args[0]) });
  return {
    seed: new SeedWebSocketErrorHandler(stub(seedLog), logger(seedLog)),
    ours: new WebSocketErrorHandler({ storage: stub(ourLog), logger: logger(ourLog) }),
    seedLog,
    ourLog,
  };
}

describe("WebSocketErrorHandler returns what the seed's class returns", () => {
  for (const code of SEED_CODES) {
    for (const [label, details] of DETAILS) {
      for (const canRefreshToken of [true, false]) {
        it(`${code}, ${label}, canRefreshToken ${canRefreshToken}, retry counts 0..4`, () => {
          const { seed, ours, seedLog, ourLog } = pair();
          const error = { code, message: `${code} message`, ...(details === undefined ? {} : { details }) };
          const context = { canRefreshToken, connectionState: "connected" };
          for (let retry = 0; retry <= 4; retry++) {
            const expected = seed.handleError(structuredClone(error), context);
            const actual = ours.handleError(structuredClone(error), context);
            assert.deepEqual(seedFields(actual, expected), expected, `retry ${retry}`);
            // Added fields only: the wait in ms agrees with the seed's figure, in ms.
            if (expected.retryAfter !== undefined) {
              const seedMs = code === "RATE_LIMIT_EXCEEDED" ? expected.retryAfter * 1000 : expected.retryAfter;
              const hint = Number(details?.retry_after) * 1000;
              if (code === "RATE_LIMIT_EXCEEDED" && details?.retry_after === 0) assert.equal(actual.retryAfterMs, 0);
              else if (code === "SERVER_ERROR" && hint > seedMs) assert.equal(actual.retryAfterMs, hint);
              else assert.equal(actual.retryAfterMs, seedMs, `retry ${retry}`);
            }
            assert.equal(actual.code, code);
          }
          assert.deepEqual(ourLog.storage, seedLog.storage);
          assert.deepEqual(ourLog.errors, seedLog.errors);
        });
      }
    }
  }

  it("an unknown code, and no code at all", () => {
    const { seed, ours, seedLog, ourLog } = pair();
    for (const error of [{ code: "WHAT" }, {}]) {
      const expected = seed.handleError(error, { canRefreshToken: false });
      assert.deepEqual(seedFields(ours.handleError(error, { canRefreshToken: false }), expected), expected);
    }
    assert.equal(ourLog.errors.length, seedLog.errors.length);
  });

  it("a whole error envelope gets the answer the seed gives its `error` object", () => {
    for (const code of SEED_CODES) {
      const { seed, ours } = pair();
      const error = { code, message: "m", details: { retry_after: 30 } };
      const expected = seed.handleError(error, { canRefreshToken: true });
      const actual = ours.handleError({ id: "error-123", type: "error", error, timestamp: "2025-01-15T10:35:00Z" }, { canRefreshToken: true });
      assert.deepEqual(seedFields(actual, expected), expected, code);
      assert.equal(actual.serverMessage, "m");
    }
  });
});

describe("WebSocketRateLimiter returns what the seed's class returns", () => {
  function pairAt(start) {
    let now = start;
    const clock = () => now;
    return {
      seed: new SeedWebSocketRateLimiter(clock),
      ours: new WebSocketRateLimiter({ now: clock }),
      at: (t) => (now = t),
    };
  }

  function assertSame({ seed, ours }, type, label) {
    for (const method of ["getTimeUntilNextMessage", "getRemainingMessages"]) {
      assert.equal(ours[method](type), seed[method](type), `${label}: ${method}(${type})`);
    }
  }

  function send({ seed, ours }, type, label) {
    const expected = seed.canSendMessage(type);
    assert.equal(ours.canSendMessage(type), expected, `${label}: canSendMessage(${type})`);
    return expected;
  }

  for (const type of ["chat", "agent_status", "trip_collaboration", "notifications", "unknown_channel"]) {
    it(`${type}: fresh, under the limit, at the limit, after the window`, () => {
      const p = pairAt(1_000_000);
      const limit = p.seed.limits.get(type)?.limit ?? 5;
      assertSame(p, type, "fresh");
      send(p, type, "first");
      p.at(1_001_000);
      assertSame(p, type, "one message, 1 s later"); // the seed: 59,000 ms
      for (let i = 1; i < limit; i++) send(p, type, `message ${i + 1}`);
      p.at(1_002_000);
      assertSame(p, type, "at the limit");
      assert.equal(send(p, type, "over the limit"), type === "unknown_channel");
      assertSame(p, type, "refused");
      p.at(1_060_000);
      assertSame(p, type, "the first message a window old");
      send(p, type, "after the first expired");
      assertSame(p, type, "after the first expired");
      p.at(1_200_000);
      assertSame(p, type, "after the window");
      send(p, type, "after the window");
      assertSame(p, type, "after the window, one sent");
    });
  }

  it("the seed's example: one message, then 1 s: 59,000 ms (waitMs, ours, says 0)", () => {
    const p = pairAt(0);
    send(p, "chat", "one");
    p.at(1000);
    assert.equal(p.seed.getTimeUntilNextMessage("chat"), 59000);
    assert.equal(p.ours.getTimeUntilNextMessage("chat"), 59000);
    assert.equal(p.ours.waitMs("chat"), 0);
  });
});
