// The seed's "Vue.js Composition API" composable (websocket-integration-guide.md, "Client
// Integration"), verbatim, bugs included: everything below this comment and the blank line after
// it. docs/client.md prints it with two fixes; hooks-live.test.mjs checks that it is this with
// exactly those fixes, and runs this one to show each bug.

import { ref, reactive, onMounted, onUnmounted, watch } from "vue";

export function useWebSocketConnection(options: UseWebSocketOptions) {
  const connectionState = ref<ConnectionState>("disconnected");
  const lastMessage = ref<any>(null);
  const error = ref<Error | null>(null);

  let connection: WebSocketConnection | null = null;
  let lifecycle: ConnectionLifecycleManager | null = null;

  const sendMessage = (message: any) => {
    connection?.send(message);
  };

  const reconnect = () => {
    connection?.connect();
  };

  const disconnect = () => {
    connection?.disconnect();
  };

  const setupConnection = () => {
    connection = new WebSocketConnection({
      url: options.url,
      token: options.token,
      reconnectAttempts: options.reconnectAttempts || 3,
      heartbeatInterval: options.heartbeatInterval || 30000,
    });

    lifecycle = new ConnectionLifecycleManager(connection);

    lifecycle.on("stateChange", (state: ConnectionState) => {
      connectionState.value = state;
    });

    connection.on("message", (message: any) => {
      lastMessage.value = message;
      options.onMessage?.(message);
    });

    connection.on("error", (error: Error) => {
      error.value = error;
      options.onError?.(error);
    });
  };

  const cleanup = () => {
    connection?.disconnect();
    connection = null;
    lifecycle = null;
  };

  onMounted(() => {
    setupConnection();
    connection?.connect();
  });

  onUnmounted(() => {
    cleanup();
  });

  // Watch for option changes
  watch(
    () => [options.url, options.token],
    () => {
      cleanup();
      setupConnection();
      connection?.connect();
    }
  );

  return {
    connectionState: readonly(connectionState),
    lastMessage: readonly(lastMessage),
    error: readonly(error),
    sendMessage,
    reconnect,
    disconnect,
  };
}
