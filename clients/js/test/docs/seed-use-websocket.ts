// The seed's "React Hook for WebSocket Management" (websocket-integration-guide.md, "Client
// Integration"), verbatim: everything below this comment and the blank line after it.
// docs/client.md prints it with import lines added; hooks-live.test.mjs checks that it is this.

interface UseWebSocketOptions {
  url: string;
  token: string;
  reconnectAttempts?: number;
  heartbeatInterval?: number;
  onMessage?: (message: any) => void;
  onError?: (error: Error) => void;
  onConnect?: () => void;
  onDisconnect?: () => void;
}

interface UseWebSocketReturn {
  connectionState: ConnectionState;
  sendMessage: (message: any) => void;
  lastMessage: any;
  error: Error | null;
  reconnect: () => void;
  disconnect: () => void;
}

export function useWebSocket(options: UseWebSocketOptions): UseWebSocketReturn {
  const [connectionState, setConnectionState] =
    useState<ConnectionState>("disconnected");
  const [lastMessage, setLastMessage] = useState<any>(null);
  const [error, setError] = useState<Error | null>(null);

  const connectionRef = useRef<WebSocketConnection | null>(null);
  const lifecycleRef = useRef<ConnectionLifecycleManager | null>(null);

  const sendMessage = useCallback((message: any) => {
    if (connectionRef.current) {
      connectionRef.current.send(message);
    }
  }, []);

  const reconnect = useCallback(() => {
    if (connectionRef.current) {
      connectionRef.current.connect();
    }
  }, []);

  const disconnect = useCallback(() => {
    if (connectionRef.current) {
      connectionRef.current.disconnect();
    }
  }, []);

  useEffect(() => {
    const connection = new WebSocketConnection({
      url: options.url,
      token: options.token,
      reconnectAttempts: options.reconnectAttempts || 3,
      heartbeatInterval: options.heartbeatInterval || 30000,
    });

    const lifecycle = new ConnectionLifecycleManager(connection);

    connectionRef.current = connection;
    lifecycleRef.current = lifecycle;

    // Set up event handlers
    lifecycle.on("stateChange", (state: ConnectionState) => {
      setConnectionState(state);
    });

    connection.on("message", (message: any) => {
      setLastMessage(message);
      options.onMessage?.(message);
    });

    connection.on("error", (error: Error) => {
      setError(error);
      options.onError?.(error);
    });

    // Connect initially
    connection.connect();

    // Cleanup on unmount
    return () => {
      connection.disconnect();
    };
  }, [
    options.url,
    options.token,
    options.reconnectAttempts,
    options.heartbeatInterval,
  ]);

  return {
    connectionState,
    sendMessage,
    lastMessage,
    error,
    reconnect,
    disconnect,
  };
}
