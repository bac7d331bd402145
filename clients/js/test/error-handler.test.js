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

  it("CONNECTION_FAILED: retry with exponential backoff, then fail", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    const error = new WebSocketError("Connection failed", { code: "CONNECTION_FAILED" });
    assert.deepEqual(handler.handleError(error, {}), { action: "retry", retryAfter: 1000 });
    assert.deepEqual(handler.handleError(error, {}), { action: "retry", retryAfter: 2000 });
    assert.deepEqual(handler.handleError(error, {}), { action: "retry", retryAfter: 4000 });
    assert.equal(handler.handleError(error, {}).action, "fail");
    handler.reset();
    assert.equal(handler.handleError(error, {}).retryAfter, 1000);
  });

  it("AUTHENTICATION_FAILED: refresh_token when possible, else redirect_login; tokens cleared", () => {
    const storage = { removeItem: mock.fn() };
    const handler = new WebSocketErrorHandler({ storage });
    assert.deepEqual(handler.handleError(envelope("AUTHENTICATION_FAILED", { reason: "expired" }), { canRefreshToken: true }), { action: "refresh_token", retryAfter: 0 });
    assert.deepEqual(handler.handleError(envelope("AUTHENTICATION_FAILED"), { canRefreshToken: false }), { action: "redirect_login", retryAfter: 0 });
    assert.deepEqual(storage.removeItem.mock.calls.map((c) => c.arguments[0]), ["auth_token", "refresh_token", "auth_token", "refresh_token"]);
  });

  it("works without localStorage", () => {
    // Node 20 has no localStorage; an explicit null stands for "none" on any runtime.
    const handler = new WebSocketErrorHandler();
    assert.equal(new WebSocketErrorHandler({ storage: null }).handleError(envelope("AUTHENTICATION_FAILED"), {}).action, "redirect_login");
    assert.equal(handler.handleError(envelope("AUTHENTICATION_FAILED"), {}).action, "redirect_login");
  });

  it("AUTHORIZATION_FAILED, MESSAGE_TOO_LARGE, INVALID_MESSAGE_FORMAT: fail", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    for (const code of ["AUTHORIZATION_FAILED", "MESSAGE_TOO_LARGE", "INVALID_MESSAGE_FORMAT"]) {
      const action = handler.handleError(envelope(code), {});
      assert.equal(action.action, "fail", code);
      assert.equal(typeof action.message, "string");
    }
  });

  it("RATE_LIMIT_EXCEEDED: retry after details.retry_after seconds, in milliseconds", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    assert.deepEqual(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: 0.2 }), {}), { action: "retry", retryAfter: 200 });
    assert.deepEqual(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: 30 }), {}), { action: "retry", retryAfter: 30000 });
    // the seed's `|| 60` turned a valid 0 into 60
    assert.deepEqual(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: 0 }), {}), { action: "retry", retryAfter: 0 });
    assert.equal(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: 0.0011 }), {}).retryAfter, 2);
    // missing or invalid: 60 s, in ms too
    assert.deepEqual(handler.handleError(envelope("RATE_LIMIT_EXCEEDED"), {}), { action: "retry", retryAfter: 60000 });
    assert.equal(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: "soon" }), {}).retryAfter, 60000);
    assert.equal(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: -1 }), {}).retryAfter, 60000);
    assert.equal(handler.handleError(envelope("RATE_LIMIT_EXCEEDED", { retry_after: null }), {}).retryAfter, 60000);
  });

  it("SERVER_ERROR: retry while retryable, up to maxRetries", () => {
    const handler = new WebSocketErrorHandler({ storage: null, maxRetries: 2 });
    assert.deepEqual(handler.handleError(envelope("SERVER_ERROR", { retryable: true }), {}), { action: "retry", retryAfter: 1000 });
    assert.deepEqual(handler.handleError(envelope("SERVER_ERROR"), {}), { action: "retry", retryAfter: 2000 });
    assert.equal(handler.handleError(envelope("SERVER_ERROR"), {}).action, "fail");
    const other = new WebSocketErrorHandler({ storage: null });
    assert.equal(other.handleError(envelope("SERVER_ERROR", { retryable: false }), {}).action, "fail");
  });

  it("SERVER_ERROR from an overloaded server: never sooner than its retry_after", () => {
    const handler = new WebSocketErrorHandler({ storage: null });
    const overloaded = (seconds) => envelope("SERVER_ERROR", { reason: "overloaded", retryable: true, retry_after: seconds });
    assert.deepEqual(handler.handleError(overloaded(1.25), {}), { action: "retry", retryAfter: 1250 });
    assert.deepEqual(handler.handleError(overloaded(0.5), {}), { action: "retry", retryAfter: 2000 }); // the backoff is longer
    assert.deepEqual(handler.handleError(overloaded("soon"), {}), { action: "retry", retryAfter: 4000 });
  });

  it("NETWORK_ERROR: retry with backoff up to maxRetries, capped", () => {
    const handler = new WebSocketErrorHandler({ storage: null, maxRetries: 7 });
    const delays = [];
    for (let i = 0; i < 7; i++) delays.push(handler.handleError(envelope("NETWORK_ERROR"), {}).retryAfter);
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    assert.deepEqual(handler.handleError(envelope("NETWORK_ERROR"), {}), { action: "fail", message: "Network connection failed" });
  });

  it("unknown codes fail and are logged", () => {
    const logger = { error: mock.fn() };
    const handler = new WebSocketErrorHandler({ storage: null, logger });
    assert.equal(handler.handleError({ code: "WHAT" }, {}).action, "fail");
    assert.equal(logger.error.mock.callCount(), 1);
  });
});
