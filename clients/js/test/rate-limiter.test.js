import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { WebSocketRateLimiter, DEFAULT_RATE_LIMITS } from "../rate-limiter.js";

function limiterAt(start = 0, options = {}) {
  let now = start;
  const limiter = new WebSocketRateLimiter({ now: () => now, ...options });
  return { limiter, advance: (ms) => (now += ms), at: (t) => (now = t) };
}

describe("WebSocketRateLimiter", () => {
  it("has the seed's table", () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(DEFAULT_RATE_LIMITS).map(([k, v]) => [k, [v.limit, v.window]])),
      { chat: [120, 60000], agent_status: [60, 60000], trip_collaboration: [300, 60000], notifications: [30, 60000] },
    );
  });

  it("allows `limit` messages per window, then refuses until the oldest expires", () => {
    const { limiter, advance } = limiterAt(1000);
    for (let i = 0; i < 30; i++) assert.equal(limiter.canSendMessage("notifications"), true);
    assert.equal(limiter.canSendMessage("notifications"), false);
    assert.equal(limiter.getRemainingMessages("notifications"), 0);
    assert.equal(limiter.waitMs("notifications"), 60000);
    advance(59999);
    assert.equal(limiter.canSendMessage("notifications"), false);
    assert.equal(limiter.waitMs("notifications"), 1);
    advance(1);
    assert.equal(limiter.canSendMessage("notifications"), true);
  });

  it("unknown channel types are not limited", () => {
    const { limiter } = limiterAt();
    assert.equal(limiter.canSendMessage("other"), true);
    assert.equal(limiter.waitMs("other"), 0);
    assert.equal(limiter.getTimeUntilNextMessage("other"), 0);
    assert.equal(limiter.getRemainingMessages("other"), Infinity);
  });

  it("waitMs ignores expired timestamps", () => {
    const { limiter, at } = limiterAt(0);
    // One message long ago (expired), then a full window of recent ones.
    limiter.canSendMessage("notifications");
    at(100000);
    for (let i = 0; i < 30; i++) limiter.canSendMessage("notifications");
    at(110000);
    assert.equal(limiter.waitMs("notifications"), 50000);
    // The seed's Math.min over the stored timestamps agrees: its send at 100000 dropped the 0.
    assert.equal(limiter.getTimeUntilNextMessage("notifications"), 50000);
    assert.equal(limiter.canSendMessage("notifications"), false);
  });

  it("waitMs is 0 while under the limit; getTimeUntilNextMessage is the seed's window - age", () => {
    const { limiter, advance } = limiterAt(0);
    limiter.canSendMessage("chat");
    advance(10000);
    assert.equal(limiter.waitMs("chat"), 0);
    assert.equal(limiter.getTimeUntilNextMessage("chat"), 50000); // the seed's figure, not a wait
  });

  it("a RATE_LIMIT_EXCEEDED envelope blocks for retry_after seconds", () => {
    const { limiter, advance } = limiterAt(0);
    const handled = limiter.updateFromServer("trip_collaboration", {
      type: "error",
      request_id: "m-7",
      error: { code: "RATE_LIMIT_EXCEEDED", message: "Message rate limit exceeded", details: { limit: 300, remaining: 0, retry_after: 0.2, window_seconds: 60, burst: 50 } },
    });
    assert.equal(handled, true);
    assert.equal(limiter.canSendMessage("trip_collaboration"), false);
    assert.equal(limiter.waitMs("trip_collaboration"), 200);
    assert.equal(limiter.getRemainingMessages("trip_collaboration"), 0);
    advance(199);
    assert.equal(limiter.canSendMessage("trip_collaboration"), false);
    advance(1);
    assert.equal(limiter.canSendMessage("trip_collaboration"), true);
  });

  it("accepts an error object, a WebSocketError-like object or bare details", () => {
    const { limiter } = limiterAt(0);
    limiter.updateFromServer("chat", { code: "RATE_LIMIT_EXCEEDED", details: { retry_after: 2 } });
    assert.equal(limiter.waitMs("chat"), 2000);
    limiter.updateFromServer("agent_status", { retry_after: 3 });
    assert.equal(limiter.waitMs("agent_status"), 3000);
    assert.equal(limiter.updateFromServer("chat", { type: "error", error: { code: "INVALID_MESSAGE_FORMAT" } }), false);
  });

  it("rate_limit_status with nothing remaining blocks for one message's refill; adopts the server's limits", () => {
    const { limiter, advance } = limiterAt(0);
    limiter.updateFromServer("trip_collaboration", {
      type: "rate_limit_status", current_usage: 50, limit: 300, remaining: 0, burst: 50, window_seconds: 60,
    });
    assert.equal(limiter.waitMs("trip_collaboration"), 200);
    advance(200);
    assert.equal(limiter.canSendMessage("trip_collaboration"), true);
    limiter.updateFromServer("chat", { type: "rate_limit_status", limit: 10, remaining: 10, burst: 5, window_seconds: 30 });
    assert.deepEqual(limiter.limits.get("chat"), { limit: 10, window: 30000, burst: 5 });
  });

  it("rate_limit_status: what may be sent now is burst_remaining; the window's remaining only reports", () => {
    const { limiter, advance } = limiterAt(0, { enforceBurst: true });
    // The window's 300 are used but the bucket still holds 12: not blocked, 12 may go now.
    limiter.updateFromServer("trip_collaboration", {
      type: "rate_limit_status", current_usage: 300, limit: 300, remaining: 0, burst: 50, burst_remaining: 12, window_seconds: 60,
    });
    assert.equal(limiter.waitMs("trip_collaboration"), 0);
    for (let i = 0; i < 12; i++) assert.equal(limiter.canSendMessage("trip_collaboration"), true);
    assert.equal(limiter.canSendMessage("trip_collaboration"), false);
    // The window has room but the bucket is empty: wait for one message's refill.
    limiter.updateFromServer("trip_collaboration", {
      type: "rate_limit_status", current_usage: 50, limit: 300, remaining: 250, burst: 50, burst_remaining: 0, window_seconds: 60,
    });
    assert.equal(limiter.waitMs("trip_collaboration"), 200);
    advance(200);
    assert.equal(limiter.canSendMessage("trip_collaboration"), true);
  });

  it("enforceBurst models the server's token bucket", () => {
    const { limiter, advance } = limiterAt(0, { enforceBurst: true });
    for (let i = 0; i < 50; i++) assert.equal(limiter.canSendMessage("trip_collaboration"), true);
    assert.equal(limiter.canSendMessage("trip_collaboration"), false);
    assert.equal(limiter.waitMs("trip_collaboration"), 200);
    advance(200);
    assert.equal(limiter.canSendMessage("trip_collaboration"), true);
    assert.equal(limiter.canSendMessage("trip_collaboration"), false);
  });

  it("reset forgets counts and blocks", () => {
    const { limiter } = limiterAt(0);
    limiter.blockFor("chat", 10);
    limiter.reset("chat");
    assert.equal(limiter.canSendMessage("chat"), true);
  });
});
