// Type declarations for rate-limiter.js.
import type { ConnectionRateLimiter, ConnectionType } from "./websocket-connection.js";

/** Messages per window (ms) and the server's bucket size. */
export interface RateLimit {
  limit: number;
  window: number;
  burst: number;
}

/** setLimit's argument: window defaults to 60000 ms, burst to limit. */
export interface RateLimitInput {
  limit: number;
  window?: number;
  burst?: number;
}

/** The seed's table. */
export declare const DEFAULT_RATE_LIMITS: Readonly<{ [type in ConnectionType]: Readonly<RateLimit> }>;

export interface RateLimiterOptions {
  /** Clock in ms (Date.now). */
  now?: () => number;
  /** Per channel type (DEFAULT_RATE_LIMITS). */
  limits?: { [channelType: string]: RateLimitInput };
  /** Also model the server's token bucket (false). */
  enforceBurst?: boolean;
}

/** The seed's sliding-window limiter, fed by the server's rate_limit_status. */
export declare class WebSocketRateLimiter implements ConnectionRateLimiter {
  constructor(options?: RateLimiterOptions);
  enforceBurst: boolean;
  /** Channel type -> timestamps (ms), oldest first. */
  messageCounts: Map<string, number[]>;
  limits: Map<string, RateLimit>;
  /** Channel type -> ms. */
  blockedUntil: Map<string, number>;
  setLimit(channelType: string, limit: RateLimitInput): void;
  /** True (and the message is counted) when a message may be sent now. */
  canSendMessage(channelType: string): boolean;
  /** The seed's figure in ms: window − age of the oldest stored message (non-zero under the
   * limit; 0 with none stored, once it is a window old, or for an unknown type). Not a wait. */
  getTimeUntilNextMessage(channelType: string): number;
  /** Ms until canSendMessage can answer true (0: now): window, server block and burst. */
  waitMs(channelType: string): number;
  /** Messages that may be sent now (Infinity for an unknown channel type). */
  getRemainingMessages(channelType: string): number;
  /** No message until `seconds` from now. */
  blockFor(channelType: string, seconds: number): void;
  /** Learn from rate_limit_status or a RATE_LIMIT_EXCEEDED error; true when it was one. */
  updateFromServer(channelType: string, message: object): boolean;
  reset(channelType?: string): void;
}
