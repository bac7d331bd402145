// TripSage Realtime: what to do about an error (the seed's table and recovery actions).

/** The seed's error table. */
export const ERROR_TYPES = Object.freeze({
  CONNECTION_FAILED: { description: "Initial connection failed", recovery: "Retry with exponential backoff" },
  AUTHENTICATION_FAILED: { description: "Invalid token or credentials", recovery: "Refresh token or re-authenticate" },
  AUTHORIZATION_FAILED: { description: "Insufficient permissions", recovery: "Check user permissions" },
  RATE_LIMIT_EXCEEDED: { description: "Too many messages sent", recovery: "Implement client-side rate limiting" },
  MESSAGE_TOO_LARGE: { description: "Message exceeds size limit", recovery: "Compress or split large messages" },
  INVALID_MESSAGE_FORMAT: { description: "Malformed message", recovery: "Validate message format before sending" },
  SERVER_ERROR: { description: "Internal server error", recovery: "Retry request, contact support" },
  NETWORK_ERROR: { description: "Network connectivity issues", recovery: "Wait for reconnection" },
});

/** Used when a RATE_LIMIT_EXCEEDED error carries no usable `retry_after`. */
export const DEFAULT_RATE_LIMIT_RETRY_MS = 60000;

/** Pull {code, message, details} out of an error envelope, its `error`, or an Error. */
export function normalizeError(error) {
  if (error == null) return { code: "UNKNOWN_ERROR", message: "Unknown error", details: {} };
  const inner = error.type === "error" && error.error && typeof error.error === "object" ? error.error : error;
  return {
    code: inner.code || "UNKNOWN_ERROR",
    message: inner.message || String(inner.code || "Unknown error"),
    details: inner.details ?? {},
  };
}

/** The seed's fallback for a RATE_LIMIT_EXCEEDED error without `retry_after`, in seconds. */
export const DEFAULT_RATE_LIMIT_RETRY_SECONDS = 60;

/** The server's `retry_after` (seconds, possibly fractional) when it is a number >= 0, else null. */
function retryAfterSeconds(details) {
  const raw = details?.retry_after;
  if (raw == null || raw === "") return null;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * Maps an error to a recovery action {action: "retry" | "refresh_token" | "redirect_login" |
 * "fail", retryAfter?: number, message?: string}: **the seed's class's answer, field for field,
 * units included** (clients/js/test/seed-parity.test.js holds the seed's class and compares).
 * So `retryAfter` is in the seed's mixed units: the server's `details.retry_after` in *seconds*
 * for RATE_LIMIT_EXCEEDED (`|| 60`, so a missing or 0 value gives 60), the backoff in
 * *milliseconds* for NETWORK_ERROR and SERVER_ERROR, 0 for AUTHENTICATION_FAILED; and every code
 * the seed's switch does not name (CONNECTION_FAILED, AUTHORIZATION_FAILED, MESSAGE_TOO_LARGE,
 * INVALID_MESSAGE_FORMAT, anything else) is `{action: "fail", message: "An unexpected error
 * occurred"}`, logged, as in the seed.
 *
 * Fields added beyond the seed's (never a changed seed field):
 * - `retryAfterMs`: on every action that has `retryAfter`, the wait **in milliseconds**; use it
 *   rather than `retryAfter`. For rate limits it is Math.ceil(retry_after * 1000) (a valid 0 is
 *   0, where the seed's `|| 60` answers 60 s) or 60000; for an overloaded SERVER_ERROR (close
 *   4013) it is never sooner than the server's `retry_after`.
 * - `code`: the error's code; `serverMessage`: the error's own message, when it has one.
 *
 * Also beyond the seed: `error` may be a whole error envelope ({type: "error", error: {...}}) or
 * a WebSocketError, not only its `error` object (the seed read `error.code` of what it got).
 *
 * Options: maxRetries (3), baseDelay (1000 ms), maxDelay (30000 ms, caps the NETWORK_ERROR
 * backoff as in the seed), storage (default globalThis.localStorage when present; tokens
 * `auth_token` and `refresh_token` are removed on AUTHENTICATION_FAILED), tokenKeys, logger
 * (console).
 */
export class WebSocketErrorHandler {
  constructor({ maxRetries = 3, baseDelay = 1000, maxDelay = 30000, storage, tokenKeys = ["auth_token", "refresh_token"], logger } = {}) {
    this.errorCounts = new Map();
    this.maxRetries = maxRetries;
    this.baseDelay = baseDelay;
    this.maxDelay = maxDelay;
    this.storage = storage;
    this.tokenKeys = tokenKeys;
    this.logger = logger ?? (typeof console !== "undefined" ? console : null);
  }

  /** context: {canRefreshToken?, connectionState?, currentUser?} */
  handleError(error, context = {}) {
    const normalized = normalizeError(error);
    const currentCount = this.errorCounts.get(normalized.code) || 0;
    let action;
    switch (normalized.code) {
      case "AUTHENTICATION_FAILED":
        action = this.handleAuthError(normalized, context);
        break;
      case "RATE_LIMIT_EXCEEDED":
        action = this.handleRateLimitError(normalized, context);
        break;
      case "NETWORK_ERROR":
        action = this.handleNetworkError(normalized, context, currentCount);
        break;
      case "SERVER_ERROR":
        action = this.handleServerError(normalized, context, currentCount);
        break;
      default:
        action = this.handleUnknownError(normalized, context);
    }
    action.code = normalized.code;
    if (error != null && (error.message || error.error?.message)) action.serverMessage = normalized.message;
    return action;
  }

  /** Forget the retry counts (one code, or all), e.g. after a successful (re)connection. */
  reset(code) {
    if (code === undefined) this.errorCounts.clear();
    else this.errorCounts.delete(code);
  }

  backoff(retryCount) {
    return Math.min(this.baseDelay * 2 ** retryCount, this.maxDelay);
  }

  handleAuthError(error, context) {
    this.clearStoredTokens();
    if (context.canRefreshToken) return { action: "refresh_token", retryAfter: 0, retryAfterMs: 0 };
    return { action: "redirect_login", retryAfter: 0, retryAfterMs: 0 };
  }

  handleRateLimitError(error) {
    const seconds = retryAfterSeconds(error.details);
    return {
      action: "retry",
      retryAfter: seconds || DEFAULT_RATE_LIMIT_RETRY_SECONDS, // the seed's `retry_after || 60`, seconds
      retryAfterMs: seconds === null ? DEFAULT_RATE_LIMIT_RETRY_MS : Math.ceil(seconds * 1000),
    };
  }

  handleNetworkError(error, context, retryCount) {
    if (retryCount < this.maxRetries) {
      this.errorCounts.set("NETWORK_ERROR", retryCount + 1);
      const retryAfter = this.backoff(retryCount);
      return { action: "retry", retryAfter, retryAfterMs: retryAfter };
    }
    return { action: "fail", message: "Network connection failed" };
  }

  handleServerError(error, context, retryCount) {
    if (retryCount < this.maxRetries && error.details?.retryable !== false) {
      this.errorCounts.set("SERVER_ERROR", retryCount + 1);
      const retryAfter = this.baseDelay * 2 ** retryCount; // the seed's: not capped
      // An overloaded server (close 4013) says when to come back: never sooner than that.
      const seconds = retryAfterSeconds(error.details);
      const retryAfterMs = seconds ? Math.max(retryAfter, Math.ceil(seconds * 1000)) : retryAfter;
      return { action: "retry", retryAfter, retryAfterMs };
    }
    return { action: "fail", message: "Server error occurred" };
  }

  handleUnknownError(error) {
    this.logger?.error?.("Unknown WebSocket error:", error);
    return { action: "fail", message: "An unexpected error occurred" };
  }

  clearStoredTokens() {
    let storage = this.storage;
    if (storage === undefined) {
      try {
        storage = globalThis.localStorage; // throws in some sandboxed iframes
      } catch {
        storage = null;
      }
    }
    if (!storage || typeof storage.removeItem !== "function") return;
    for (const key of this.tokenKeys) {
      try {
        storage.removeItem(key);
      } catch {
        // storage disabled
      }
    }
  }
}
