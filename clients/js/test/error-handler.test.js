import { describe, it, mock } from "node:test";
import assert from "node:assert/strict";

import { WebSocketErrorHandler, ERROR_TYPES, normalizeError } from "../error-handler.js";
import { WebSocketError } from "../websocket-connection.js";

const envelope = (code, details = {}) => ({
  id: "error-123",
  type: "error",
  error: { code, message: `${code} message`, details },
  timestamp: "2025-01-15T10:35:00Z",
  request_id: "req-456",
});

describe("WebSocketErrorHandler", () => {
  it("has the seed's error table", () => {
    assert.deepEqual(Object.keys(ERROR_TYPES), [
      "CONNECTION_FAILED", "AUTHENTICATION_FAILED", "AUTHORIZATION_FAILED", "RATE_LIMIT_EXCEEDED",
      "MESSAGE_TOO_LARGE", "INVALID_MESSAGE_FORMAT", "SERVER_ERROR", "NETWORK_ERROR",
    ]);
  });

  it("normalizes envelopes, their error objects and Errors", () => {
    assert.equal(normalizeError(envelope("SERVER_ERROR")).code, "SERVER_ERROR");
    assert.equal(normalizeError({ code: "NETWORK_ERROR", details: { reason: "x" } }).details.reason, "x");
    assert.equal(normalizeError(new WebSocketError("m", { code: "MESSAGE_TOO_LARGE" })).code, "MESSAGE_TOO_LARGE");
    assert.equal(normalizeError(null).code, "UNKNOWN_ERROR");
  });

  it("codes the seed's switch does not name fail as the seed's do, with the code and the server's message added", () => {
    const logger = { error: mock.fn() };
    const handler = new WebSocketErrorHandler({ storage: null, logger });
    for (const code of ["CONNECTION_FAILED", "AUTHORIZATION_FAILED", "MESSAGE_TOO_LARGE", "INVALID_MESSAGE_FORMAT"]) {
      assert.deepEqual(handler.handleError(envelope(code), {}), {
        action: "fail", message: "An unexpected error occurred", code, serverMessage: `${code} message`,
      });
    }
    assert.equal(logger.error.mock.callCount(), 4);
  });

  it("AUTHENTICATION_FAILED: refresh_token when possible, else redirect_login; tokens cleared", () => {
    const storage = { removeItem: mock.fn() };
    const handler = new WebSocketErrorHandler({ storage });
    assert.equal(handler.handleError(envelope("AUTHENTICATION_FAILED", { reason: "expired" }), { canRefreshToken: true }).action, "refresh_token");
    assert.equal(handler.handleError(envelope("AUTHENTICATION_FAILED"), { canRefreshToken: false }).action, "redirect_login");
    assert.deepEqual(storage.removeItem.mock.calls.map((c) => c.arguments[0]), ["auth_token", "refresh_token", "auth_token", "refresh_token"]);
  });

  it("works without localStorage", () => {
    // Node 20 has no localStorage; an explicit null stands for "none" on any runtime.
    const handler = new WebSocketErrorHandler();
    assert.equal(new WebSocketErrorHandler({ storage: null }).handleError(envelope("AUTHENTICATION_FAILED"), {}).action, "redirect_login");
    assert.equal(handler.handleError(envelope("AUTHENTICATION_FAILED"), {}).action, "redirect_login");
  });

  it("RATE_LIMIT_EXCEEDED: retryAfter is the seed's seconds (|| 60), retryAfterMs the wait in ms", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    const rate = (details) => {
      const { action, retryAfter, retryAfterMs } = handler.handleError(envelope("RATE_LIMIT_EXCEEDED", details), {});
      return { action, retryAfter, retryAfterMs };
    };
    assert.deepEqual(rate({ retry_after: 0.2 }), { action: "retry", retryAfter: 0.2, retryAfterMs: 200 });
    assert.deepEqual(rate({ retry_after: 30 }), { action: "retry", retryAfter: 30, retryAfterMs: 30000 });
    // the seed's `|| 60` turns a valid 0 into 60 s; the added field keeps "now"
    assert.deepEqual(rate({ retry_after: 0 }), { action: "retry", retryAfter: 60, retryAfterMs: 0 });
    assert.equal(rate({ retry_after: 0.0011 }).retryAfterMs, 2);
    // missing or invalid: 60 s
    for (const details of [{}, { retry_after: "soon" }, { retry_after: -1 }, { retry_after: null }]) {
      assert.deepEqual(rate(details), { action: "retry", retryAfter: 60, retryAfterMs: 60000 }, JSON.stringify(details));
    }
  });

  it("SERVER_ERROR: retry while retryable, up to maxRetries", () => {
    const handler = new WebSocketErrorHandler({ storage: null, maxRetries: 2 });
    assert.equal(handler.handleError(envelope("SERVER_ERROR", { retryable: true }), {}).retryAfterMs, 1000);
    assert.equal(handler.handleError(envelope("SERVER_ERROR"), {}).retryAfterMs, 2000);
    assert.equal(handler.handleError(envelope("SERVER_ERROR"), {}).action, "fail");
    const other = new WebSocketErrorHandler({ storage: null });
    assert.equal(other.handleError(envelope("SERVER_ERROR", { retryable: false }), {}).action, "fail");
  });

  it("SERVER_ERROR from an overloaded server: retryAfterMs never sooner than its retry_after", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    const overloaded = (seconds) => envelope("SERVER_ERROR", { reason: "overloaded", retryable: true, retry_after: seconds });
    const wait = (seconds) => {
      const { retryAfter, retryAfterMs } = handler.handleError(overloaded(seconds), {});
      return [retryAfter, retryAfterMs];
    };
    assert.deepEqual(wait(1.25), [1000, 1250]); // retryAfter: the seed's backoff
    assert.deepEqual(wait(0.5), [2000, 2000]); // the backoff is longer
    assert.deepEqual(wait("soon"), [4000, 4000]);
  });

  it("NETWORK_ERROR: retry with backoff up to maxRetries, capped", () => {
    const handler = new WebSocketErrorHandler({ storage: null, maxRetries: 7 });
    const delays = [];
    for (let i = 0; i < 7; i++) delays.push(handler.handleError(envelope("NETWORK_ERROR"), {}).retryAfterMs);
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    assert.equal(handler.handleError(envelope("NETWORK_ERROR"), {}).message, "Network connection failed");
    handler.reset();
    assert.equal(handler.handleError(envelope("NETWORK_ERROR"), {}).retryAfterMs, 1000);
  });

  it("unknown codes fail and are logged", () => {
    const logger = { error: mock.fn() };
    const handler = new WebSocketErrorHandler({ storage: null, logger });
    assert.equal(handler.handleError({ code: "WHAT" }, {}).action, "fail");
    assert.equal(logger.error.mock.callCount(), 1);
  });
});
