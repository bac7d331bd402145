// TripSage Realtime: the seed's Vue composable, over an injected Vue (no bundler needed).
import { createManagedConnection } from "./lifecycle.js";

/**
 * Build the seed's `useWebSocketConnection(options)` over a Vue 3 (anything with ref, readonly,
 * onMounted, onUnmounted and watch). Returns {connectionState, lastMessage, error (read-only
 * refs), sendMessage, reconnect, disconnect}.
 *
 * Fixes relative to the seed: the `error` ref is set (the seed's callback parameter `error`
 * shadowed the ref, so `error.value = error` wrote onto the Error object); `readonly` is
 * imported. Like the React hook: a new `token` is sent as `auth.refresh`, a new `url` reconnects,
 * onConnect/onDisconnect are called, `reconnectAttempts: 0` is honoured.
 */
export function createUseWebSocketConnection(Vue) {
  const { ref, readonly, onMounted, onUnmounted, watch } = Vue;

  return function useWebSocketConnection(options) {
    const connectionState = ref("disconnected");
    const lastMessage = ref(null);
    const error = ref(null);

    let connection = null;
    let lifecycle = null;

    const sendMessage = (message) => (connection ? connection.send(message) : "dropped");

    const reconnect = () => {
      connection?.reconnect();
    };

    const disconnect = () => {
      connection?.disconnect();
    };

    const setupConnection = () => {
      ({ connection, lifecycle } = createManagedConnection(options, {
        onState: (state) => {
          connectionState.value = state;
        },
        onMessage: (message) => {
          lastMessage.value = message;
          options.onMessage?.(message);
        },
        onError: (err) => {
          error.value = err;
          options.onError?.(err);
        },
        onConnect: () => options.onConnect?.(),
        onDisconnect: () => options.onDisconnect?.(),
      }));
    };

    const cleanup = () => {
      lifecycle?.destroy();
      connection?.disconnect();
      connection = null;
      lifecycle = null;
    };

    onMounted(() => {
      setupConnection();
      connection?.connect().catch(() => {});
    });

    onUnmounted(() => {
      cleanup();
    });

    // A new url: a new connection. A new token: auth.refresh on the open socket.
    watch(
      () => options.url,
      () => {
        if (!connection) return;
        cleanup();
        setupConnection();
        connection?.connect().catch(() => {});
      },
    );
    watch(
      () => options.token,
      (token) => {
        connection?.setToken(token);
      },
    );

    return {
      connectionState: readonly(connectionState),
      lastMessage: readonly(lastMessage),
      error: readonly(error),
      sendMessage,
      reconnect,
      disconnect,
    };
  };
}

const composables = new WeakMap();

/** The seed's composable over `globalThis.Vue` (Vue's global build). With a bundler or an
 * import map, prefer `createUseWebSocketConnection(Vue)`. */
export function useWebSocketConnection(options) {
  const Vue = globalThis.Vue;
  if (!Vue || typeof Vue.ref !== "function") {
    throw new Error("useWebSocketConnection needs Vue: load it as globalThis.Vue or use createUseWebSocketConnection(Vue)");
  }
  let composable = composables.get(Vue);
  if (!composable) composables.set(Vue, (composable = createUseWebSocketConnection(Vue)));
  return composable(options);
}
