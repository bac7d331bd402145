// TripSage Realtime: the seed's React hook, over an injected React (no bundler needed).
import { createManagedConnection } from "./lifecycle.js";

/**
 * Build the seed's `useWebSocket(options)` over a React (anything with useState, useRef,
 * useCallback and useEffect).
 *
 * options: {url, token, reconnectAttempts?, heartbeatInterval?, onMessage?, onError?,
 * onConnect?, onDisconnect?} plus, beyond the seed, WebSocket?, window? and connectionOptions?
 * (passed to WebSocketConnection). Returns {connectionState, sendMessage, lastMessage, error,
 * reconnect, disconnect}.
 *
 * Differences from the seed: the callbacks are read from the latest render (the seed's effect
 * kept the first ones); onConnect/onDisconnect are called (the seed never called them); a new
 * `token` is sent as `auth.refresh` on the open socket instead of tearing it down (a new `url`,
 * reconnectAttempts or heartbeatInterval still reconnects); the lifecycle manager's window
 * listeners are removed on unmount.
 */
export function createUseWebSocket(React) {
  const { useState, useRef, useCallback, useEffect } = React;

  return function useWebSocket(options) {
    const [connectionState, setConnectionState] = useState("disconnected");
    const [lastMessage, setLastMessage] = useState(null);
    const [error, setError] = useState(null);

    const connectionRef = useRef(null);
    const lifecycleRef = useRef(null);
    const optionsRef = useRef(options);
    optionsRef.current = options;
    const tokenRef = useRef(options.token);
    tokenRef.current = options.token;

    const sendMessage = useCallback((message) => {
      if (connectionRef.current) {
        return connectionRef.current.send(message);
      }
      return "dropped";
    }, []);

    const reconnect = useCallback(() => {
      if (connectionRef.current) {
        connectionRef.current.reconnect();
      }
    }, []);

    const disconnect = useCallback(() => {
      if (connectionRef.current) {
        connectionRef.current.disconnect();
      }
    }, []);

    useEffect(() => {
      const { connection, lifecycle } = createManagedConnection(
        { ...optionsRef.current, token: tokenRef.current },
        {
          onState: (state) => setConnectionState(state),
          onMessage: (message) => {
            setLastMessage(message);
            optionsRef.current.onMessage?.(message);
          },
          onError: (err) => {
            setError(err);
            optionsRef.current.onError?.(err);
          },
          onConnect: () => optionsRef.current.onConnect?.(),
          onDisconnect: () => optionsRef.current.onDisconnect?.(),
        },
      );
      connectionRef.current = connection;
      lifecycleRef.current = lifecycle;

      // Connect initially; failures arrive through the `error` event.
      connection.connect().catch(() => {});

      // Cleanup on unmount
      return () => {
        lifecycle.destroy();
        connection.disconnect();
        if (connectionRef.current === connection) connectionRef.current = null;
        if (lifecycleRef.current === lifecycle) lifecycleRef.current = null;
      };
    }, [options.url, options.reconnectAttempts, options.heartbeatInterval]);

    // A refreshed token goes to the open socket (auth.refresh) and to every later socket.
    useEffect(() => {
      const connection = connectionRef.current;
      if (connection && connection.token !== options.token) connection.setToken(options.token);
    }, [options.token]);

    return {
      connectionState,
      sendMessage,
      lastMessage,
      error,
      reconnect,
      disconnect,
    };
  };
}

const hooks = new WeakMap();

/** The seed's hook over `globalThis.React` (a page that loads React as a global). With a
 * bundler or an import map, prefer `createUseWebSocket(React)` once, at module level. */
export function useWebSocket(options) {
  const React = globalThis.React;
  if (!React || typeof React.useState !== "function") {
    throw new Error("useWebSocket needs React: load it as globalThis.React or use createUseWebSocket(React)");
  }
  let hook = hooks.get(React);
  if (!hook) hooks.set(React, (hook = createUseWebSocket(React)));
  return hook(options);
}
