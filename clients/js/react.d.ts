// Type declarations for react.js.
import type { UseWebSocketOptions } from "./lifecycle.js";
import type { ConnectionState, SendResult, ServerMessage, WebSocketError } from "./websocket-connection.js";

export type { UseWebSocketOptions } from "./lifecycle.js";

/** The part of React the hook uses (React itself satisfies it). */
export interface ReactHooks {
  useState<S>(initial: S): [S, (value: S) => void];
  useRef<T>(initial: T): { current: T };
  useCallback<F extends (...args: any[]) => any>(callback: F, deps: readonly unknown[]): F;
  useEffect(effect: () => void | (() => void), deps?: readonly unknown[]): void;
}

export interface UseWebSocketReturn {
  connectionState: ConnectionState;
  /** "dropped" before the connection exists. */
  sendMessage: (message: unknown) => SendResult;
  lastMessage: ServerMessage | null;
  error: WebSocketError | null;
  reconnect: () => void;
  disconnect: () => void;
}

export type UseWebSocket = (options: UseWebSocketOptions) => UseWebSocketReturn;

/** Build the seed's useWebSocket over a React. */
export declare function createUseWebSocket(React: ReactHooks): UseWebSocket;

/** The seed's hook over globalThis.React (throws without it). */
export declare function useWebSocket(options: UseWebSocketOptions): UseWebSocketReturn;
