// Type declarations for vue.js.
import type { UseWebSocketOptions } from "./lifecycle.js";
import type { ConnectionState, SendResult, ServerMessage, WebSocketError } from "./websocket-connection.js";

export type { UseWebSocketOptions } from "./lifecycle.js";

/** A read-only ref (Vue's Readonly<Ref<T>> fits it). */
export interface ReadonlyRefLike<T> {
  readonly value: T;
}

/** The part of Vue 3 the composable uses (Vue itself satisfies it). */
export interface VueApi {
  ref<T>(value: T): { value: T };
  readonly<T extends object>(target: T): any;
  onMounted(hook: () => any): void;
  onUnmounted(hook: () => any): void;
  watch(source: () => any, callback: (value: any, old: any) => any): any;
}

export interface UseWebSocketConnectionReturn {
  connectionState: ReadonlyRefLike<ConnectionState>;
  lastMessage: ReadonlyRefLike<ServerMessage | null>;
  error: ReadonlyRefLike<WebSocketError | null>;
  /** "dropped" before the connection exists (before mount). */
  sendMessage: (message: unknown) => SendResult;
  reconnect: () => void;
  disconnect: () => void;
}

export type UseWebSocketConnection = (options: UseWebSocketOptions) => UseWebSocketConnectionReturn;

/** Build the seed's useWebSocketConnection over a Vue 3. */
export declare function createUseWebSocketConnection(Vue: VueApi): UseWebSocketConnection;

/** The seed's composable over globalThis.Vue (throws without it). */
export declare function useWebSocketConnection(options: UseWebSocketOptions): UseWebSocketConnectionReturn;
