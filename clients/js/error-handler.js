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

/**
 * Maps an error to a recovery action {action: "retry" | "refresh_token" | "redirect_login" |
 * "fail", retryAfter?: number, message?: string}.
 *
 * **`retryAfter` is always in milliseconds** (the seed mixed seconds, for rate limits, with
 * milliseconds, for backoff). The server's `details.retry_after` is in seconds, possibly
 * fractional (0.2): it becomes Math.ceil(seconds * 1000); only a missing or invalid value falls
 * back to 60 s (the seed's `|| 60` also replaced a valid 0).
 *
 * Options: maxRetries (3), baseDelay (1000 ms), maxDelay (30000 ms), storage (default
 * globalThis.localStorage when present; tokens `auth_token` and `refresh_token` are removed on
 * AUTHENTICATION_FAILED), tokenKeys, logger (console).
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

    switch (normalized.code) {
      case "CONNECTION_FAILED":
        return this.handleRetryable(normalized, currentCount, "Could not connect");
      case "AUTHENTICATION_FAILED":
        return this.handleAuthError(normalized, context);
      case "AUTHORIZATION_FAILED":
        return { action: "fail", message: normalized.message || "Insufficient permissions" };
      case "RATE_LIMIT_EXCEEDED":
        return this.handleRateLimitError(normalized, context);
      case "MESSAGE_TOO_LARGE":
        return { action: "fail", message: normalized.message || "Message exceeds size limit" };
      case "INVALID_MESSAGE_FORMAT":
        return { action: "fail", message: normalized.message || "Malformed message" };
      case "NETWORK_ERROR":
        return this.handleRetryable(normalized, currentCount, "Network connection failed");
      case "SERVER_ERROR":
        return this.handleServerError(normalized, context, currentCount);
      default:
        return this.handleUnknownError(normalized, context);
    }
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
    if (context.canRefreshToken) return { action: "refresh_token", retryAfter: 0 };
    return { action: "redirect_login", retryAfter: 0 };
  }

  handleRateLimitError(error) {
    const seconds = Number(error.details?.retry_after);
    const valid = error.details?.retry_after != null && Number.isFinite(seconds) && seconds >= 0;
    const retryAfter = valid ? Math.ceil(seconds * 1000) : DEFAULT_RATE_LIMIT_RETRY_MS;
    return { action: "retry", retryAfter };
  }

  handleRetryable(error, retryCount, failMessage) {
    if (retryCount < this.maxRetries) {
      this.errorCounts.set(error.code, retryCount + 1);
      return { action: "retry", retryAfter: this.backoff(retryCount) };
    }
    return { action: "fail", message: failMessage };
  }

  handleServerError(error, context, retryCount) {
    if (retryCount < this.maxRetries && error.details?.retryable !== false) {
      this.errorCounts.set("SERVER_ERROR", retryCount + 1);
      // An overloaded server (close 4013) says when to come back: never sooner than that.
      const seconds = Number(error.details?.retry_after);
      const hinted = error.details?.retry_after != null && Number.isFinite(seconds) && seconds > 0;
      const backoff = this.backoff(retryCount);
      return { action: "retry", retryAfter: hinted ? Math.max(backoff, Math.ceil(seconds * 1000)) : backoff };
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
