// Type declarations for error-handler.js.
import type { ConnectionState, ErrorCode } from "./websocket-connection.js";

export type SeedErrorCode =
  | "CONNECTION_FAILED"
  | "AUTHENTICATION_FAILED"
  | "AUTHORIZATION_FAILED"
  | "RATE_LIMIT_EXCEEDED"
  | "MESSAGE_TOO_LARGE"
  | "INVALID_MESSAGE_FORMAT"
  | "SERVER_ERROR"
  | "NETWORK_ERROR";

/** The seed's error table. */
export declare const ERROR_TYPES: Readonly<{
  [code in SeedErrorCode]: { description: string; recovery: string };
}>;

/** Ms (retryAfterMs), used when a RATE_LIMIT_EXCEEDED error carries no usable retry_after. */
export declare const DEFAULT_RATE_LIMIT_RETRY_MS: 60000;

/** The seed's `retry_after || 60`: seconds (retryAfter) when retry_after is missing or 0. */
export declare const DEFAULT_RATE_LIMIT_RETRY_SECONDS: 60;

export interface NormalizedError {
  code: ErrorCode;
  message: string;
  details: { [key: string]: any };
}

/** Pull {code, message, details} out of an error envelope, its `error`, or an Error. */
export declare function normalizeError(error: unknown): NormalizedError;

/** The seed's ErrorContext (all optional here). */
export interface ErrorContext {
  canRefreshToken?: boolean;
  connectionState?: ConnectionState;
  currentUser?: unknown;
}

/**
 * The seed's ErrorRecoveryAction, with the seed's values, plus added fields.
 * `retryAfter` is in the seed's units: **seconds** for RATE_LIMIT_EXCEEDED (the server's
 * retry_after, or 60), milliseconds for NETWORK_ERROR and SERVER_ERROR backoff, 0 for
 * AUTHENTICATION_FAILED. Use `retryAfterMs`, always milliseconds.
 */
export interface ErrorRecoveryAction {
  action: "retry" | "refresh_token" | "redirect_login" | "fail";
  /** The seed's field: seconds for rate limits, ms otherwise. */
  retryAfter?: number;
  message?: string;
  /** Added: the wait in milliseconds, present whenever retryAfter is. */
  retryAfterMs?: number;
  /** Added: the error's code (from an envelope, its error object or a WebSocketError). */
  code?: ErrorCode;
  /** Added: the error's own message, when it had one. */
  serverMessage?: string;
}

export interface TokenStorage {
  removeItem(key: string): void;
}

export interface ErrorHandlerOptions {
  maxRetries?: number;
  /** Ms (1000). */
  baseDelay?: number;
  /** Ms (30000). */
  maxDelay?: number;
  /** Default globalThis.localStorage; null touches no storage. */
  storage?: TokenStorage | null;
  /** Removed on AUTHENTICATION_FAILED (["auth_token", "refresh_token"]). */
  tokenKeys?: string[];
  logger?: { error?: (...args: unknown[]) => void } | null;
}

/** Maps an error to a recovery action: the seed's class's answer, with fields added. */
export declare class WebSocketErrorHandler {
  constructor(options?: ErrorHandlerOptions);
  errorCounts: Map<string, number>;
  maxRetries: number;
  baseDelay: number;
  maxDelay: number;
  storage: TokenStorage | null | undefined;
  tokenKeys: string[];
  logger: { error?: (...args: unknown[]) => void } | null;
  handleError(error: unknown, context?: ErrorContext): ErrorRecoveryAction;
  /** Forget the retry counts (one code, or all). */
  reset(code?: string): void;
  /** Ms before retry number retryCount + 1. */
  backoff(retryCount: number): number;
  handleAuthError(error: NormalizedError, context: ErrorContext): ErrorRecoveryAction;
  handleRateLimitError(error: NormalizedError): ErrorRecoveryAction;
  handleNetworkError(error: NormalizedError, context: ErrorContext, retryCount: number): ErrorRecoveryAction;
  handleServerError(error: NormalizedError, context: ErrorContext, retryCount: number): ErrorRecoveryAction;
  handleUnknownError(error: NormalizedError): ErrorRecoveryAction;
  clearStoredTokens(): void;
}
