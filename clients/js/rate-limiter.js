// TripSage Realtime: client-side message rate limiting (the seed's table, docs/protocol.md).

/** The seed's table: messages per window (ms) and the server's bucket size (burst). */
export const DEFAULT_RATE_LIMITS = Object.freeze({
  chat: Object.freeze({ limit: 120, window: 60000, burst: 20 }),
  agent_status: Object.freeze({ limit: 60, window: 60000, burst: 10 }),
  trip_collaboration: Object.freeze({ limit: 300, window: 60000, burst: 50 }),
  notifications: Object.freeze({ limit: 30, window: 60000, burst: 5 }),
});

/**
 * The seed's sliding-window limiter: at most `limit` messages in any `window` ms per channel
 * type. `canSendMessage` records the message when it answers true (as in the seed). For the
 * seed's inputs, `canSendMessage`, `getTimeUntilNextMessage` and `getRemainingMessages` return
 * what the seed's class returns (clients/js/test/seed-parity.test.js holds the seed's class and
 * compares): `getTimeUntilNextMessage` is the seed's "window − time since the oldest stored
 * message" (59,000 ms one second after a message, even under the limit; 0 once the oldest is a
 * window old). That is not a wait: to pace sends, use `waitMs`.
 *
 * Beyond the seed:
 * - `waitMs(channelType)`: milliseconds until canSendMessage can answer true (0: now), counting
 *   only the messages still inside the window, a server block and, with enforceBurst, the burst.
 *   The connection paces its queue with it.
 * - `updateFromServer(channelType, message)` takes the server's `rate_limit_status` or a
 *   RATE_LIMIT_EXCEEDED error (`details.retry_after`, in seconds): canSendMessage answers false
 *   until then.
 * - `enforceBurst: true` also models the server's token bucket (`burst` messages at once, then
 *   limit/window refill), so a client never sends what the server would refuse.
 * - the clock is injectable: `new WebSocketRateLimiter({ now: () => ms })`.
 */
export class WebSocketRateLimiter {
  constructor({ now = () => Date.now(), limits = DEFAULT_RATE_LIMITS, enforceBurst = false } = {}) {
    this._now = now;
    this.enforceBurst = enforceBurst;
    this.messageCounts = new Map(); // channel type -> timestamps (ms), oldest first
    this.limits = new Map();
    this.blockedUntil = new Map(); // channel type -> ms
    this._buckets = new Map(); // channel type -> {tokens, at}
    for (const [type, limit] of Object.entries(limits)) this.setLimit(type, limit);
  }

  /** Set a channel type's limit: {limit, window (ms), burst?}. */
  setLimit(channelType, { limit, window = 60000, burst = limit }) {
    this.limits.set(channelType, { limit, window, burst: burst ?? limit });
  }

  /** The stored timestamps still inside the window. The store is pruned only when a message is
   * counted, as in the seed (whose getTimeUntilNextMessage reads the expired ones too). */
  _valid(channelType, limit, now) {
    const counts = this.messageCounts.get(channelType) || [];
    return counts.filter((timestamp) => now - timestamp < limit.window);
  }

  _bucket(channelType, limit, now) {
    let bucket = this._buckets.get(channelType);
    if (!bucket) {
      bucket = { tokens: limit.burst, at: now };
      this._buckets.set(channelType, bucket);
    }
    const rate = limit.limit / limit.window; // tokens per ms
    bucket.tokens = Math.min(limit.burst, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    return bucket;
  }

  _blockedFor(channelType, now) {
    const until = this.blockedUntil.get(channelType);
    if (until === undefined) return 0;
    if (now >= until) {
      this.blockedUntil.delete(channelType);
      return 0;
    }
    return until - now;
  }

  /** True (and the message is counted) when a message may be sent now. */
  canSendMessage(channelType) {
    const now = this._now();
    if (this._blockedFor(channelType, now) > 0) return false;
    const limit = this.limits.get(channelType);
    if (!limit) return true;

    const valid = this._valid(channelType, limit, now);
    if (valid.length >= limit.limit) return false;
    if (this.enforceBurst) {
      const bucket = this._bucket(channelType, limit, now);
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
    }
    valid.push(now);
    this.messageCounts.set(channelType, valid);
    return true;
  }

  /**
   * The seed's answer, in ms: window − (now − oldest stored timestamp), or 0 with no stored
   * message, once the oldest is a window old, or for an unknown channel type. Not a wait (it is
   * non-zero under the limit): see waitMs.
   */
  getTimeUntilNextMessage(channelType) {
    const limit = this.limits.get(channelType);
    if (!limit) return 0;
    const counts = this.messageCounts.get(channelType) || [];
    if (counts.length === 0) return 0;
    const timeSinceOldest = this._now() - Math.min(...counts);
    if (timeSinceOldest >= limit.window) return 0;
    return limit.window - timeSinceOldest;
  }

  /** Milliseconds until canSendMessage can answer true (0: now). */
  waitMs(channelType) {
    const now = this._now();
    const blocked = this._blockedFor(channelType, now);
    const limit = this.limits.get(channelType);
    if (!limit) return blocked;

    let wait = 0;
    const valid = this._valid(channelType, limit, now);
    if (valid.length >= limit.limit) {
      // The window has room again when enough of the messages in it have expired.
      const oldest = valid[valid.length - limit.limit];
      wait = oldest + limit.window - now;
    }
    if (this.enforceBurst) {
      const bucket = this._bucket(channelType, limit, now);
      if (bucket.tokens < 1) wait = Math.max(wait, Math.ceil((1 - bucket.tokens) / (limit.limit / limit.window)));
    }
    return Math.max(blocked, wait, 0);
  }

  /** Messages that may be sent now (Infinity for an unknown channel type). */
  getRemainingMessages(channelType) {
    const now = this._now();
    const limit = this.limits.get(channelType);
    if (this._blockedFor(channelType, now) > 0) return 0;
    if (!limit) return Infinity;
    let remaining = Math.max(0, limit.limit - this._valid(channelType, limit, now).length);
    if (this.enforceBurst) remaining = Math.min(remaining, Math.floor(this._bucket(channelType, limit, now).tokens));
    return remaining;
  }

  /** No message until `seconds` from now (the server's `retry_after` unit). */
  blockFor(channelType, seconds) {
    const ms = Number(seconds) * 1000;
    if (!Number.isFinite(ms) || ms <= 0) return;
    const until = this._now() + Math.ceil(ms);
    this.blockedUntil.set(channelType, Math.max(until, this.blockedUntil.get(channelType) ?? 0));
  }

  /**
   * Learn from the server. Accepts:
   * - `rate_limit_status` {limit, window_seconds, burst, burst_remaining, remaining}: adopts the
   *   server's limit, window and burst; with `burst_remaining` (or, without it, `remaining`) 0,
   *   blocks until one message's worth has refilled; with enforceBurst, the bucket follows it.
   *   `remaining` is the seed's `limit - current_usage` of the window, which only reports.
   * - an error envelope (or its `error`, or a WebSocketError) RATE_LIMIT_EXCEEDED: blocks for
   *   `details.retry_after` seconds (not for the refresh bucket's, `limit_type` "auth.refresh").
   * - a bare details object {retry_after}.
   * Returns true when the message was a rate-limit message.
   */
  updateFromServer(channelType, message) {
    if (!message || typeof message !== "object") return false;
    if (message.type === "rate_limit_status") {
      const current = this.limits.get(channelType);
      const limit = Number.isFinite(message.limit) && message.limit > 0 ? message.limit : current?.limit;
      if (!limit) return true;
      const window = Number.isFinite(message.window_seconds) && message.window_seconds > 0 ? message.window_seconds * 1000 : current?.window ?? 60000;
      const burst = Number.isFinite(message.burst) && message.burst > 0 ? message.burst : current?.burst ?? limit;
      this.setLimit(channelType, { limit, window, burst });
      const now = this._now();
      // What may be sent right now: the server's bucket (burst_remaining); a server without it
      // (or the seed's format) says it with remaining.
      const sendable = Number.isFinite(message.burst_remaining) ? message.burst_remaining : message.remaining;
      if (Number.isFinite(sendable)) {
        if (this.enforceBurst) this._buckets.set(channelType, { tokens: Math.max(0, sendable), at: now });
        if (sendable <= 0) this.blockFor(channelType, window / limit / 1000);
      }
      return true;
    }
    const error = message.type === "error" ? message.error : message.error ?? message;
    const code = error?.code;
    const details = error?.details ?? (code === undefined ? message : undefined);
    if (code !== undefined && code !== "RATE_LIMIT_EXCEEDED") return false;
    // The auth.refresh bucket's refusal: the connection retries the refresh; messages flow on.
    if (details?.limit_type === "auth.refresh") return true;
    const retryAfter = Number(details?.retry_after);
    if (!Number.isFinite(retryAfter) || retryAfter <= 0) return code === "RATE_LIMIT_EXCEEDED";
    this.blockFor(channelType, retryAfter);
    return true;
  }

  /** Forget the counts (one channel type, or all). */
  reset(channelType) {
    if (channelType === undefined) {
      this.messageCounts.clear();
      this.blockedUntil.clear();
      this._buckets.clear();
    } else {
      this.messageCounts.delete(channelType);
      this.blockedUntil.delete(channelType);
      this._buckets.delete(channelType);
    }
  }
}
