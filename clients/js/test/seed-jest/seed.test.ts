// The seed's Jest tests, as printed in shared/seed/websocket-integration-guide.md ("Testing
// Strategies", "Unit Testing Collaboration Features"), run against our WebSocketConnection and
// OptimisticUpdateManager: Jest in jsdom, Babel for the TypeScript and our ES modules
// (jest.config.cjs). `make test` runs them (tests/clients/test_seed_jest.py).
//
// Every line added to the seed's block ends with "// EDIT <n>"; removing those lines and this
// header gives the block back exactly (tests/clients/test_seed_jest.py checks it). The edits:
// 1. The imports the block lacks: it uses WebSocketConnection, OptimisticUpdateManager and the
//    types OptimisticUpdate and ConflictResolver without importing them.
// 2. Fake timers in the reconnection test: after an abnormal close the connection reconnects
//    after a jittered backoff (0 to 1 s for the first attempt, docs/client.md "Reconnecting"),
//    not at once, so the test runs the pending timer before counting the sockets; real timers
//    are restored after each test.
import { WebSocketConnection } from "../../websocket-connection.js"; // EDIT 1: not imported by the seed
import { OptimisticUpdateManager } from "../../optimistic.js"; // EDIT 1
import type { ConflictResolver, OptimisticUpdate } from "../../optimistic.js"; // EDIT 1

describe("WebSocketConnection", () => {
  let connection: WebSocketConnection;
  let mockWebSocket: any;

  beforeEach(() => {
    mockWebSocket = {
      send: jest.fn(),
      close: jest.fn(),
      readyState: WebSocket.OPEN,
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };

    // Mock WebSocket constructor
    global.WebSocket = jest.fn(() => mockWebSocket);

    connection = new WebSocketConnection({
      url: "ws://test.com",
      token: "test-token",
      reconnectAttempts: 3,
      heartbeatInterval: 30000,
    });
  });
  afterEach(() => jest.useRealTimers()); // EDIT 2: undo the reconnection test's fake timers

  it("should establish connection successfully", async () => {
    const connectPromise = connection.connect();

    // Simulate successful connection
    mockWebSocket.onopen();

    await connectPromise;
    expect(mockWebSocket.send).toHaveBeenCalledWith(
      JSON.stringify({
        token: "test-token",
      })
    );
  });

  it("should handle connection errors", async () => {
    const connectPromise = connection.connect();

    // Simulate connection error
    mockWebSocket.onerror(new Error("Connection failed"));

    await expect(connectPromise).rejects.toThrow("Connection failed");
  });

  it("should send messages when connected", () => {
    connection.send({ type: "test", data: "hello" });
    expect(mockWebSocket.send).toHaveBeenCalledWith(
      JSON.stringify({
        type: "test",
        data: "hello",
      })
    );
  });

  it("should handle reconnection on close", () => {
    jest.useFakeTimers(); // EDIT 2: the reconnection waits a jittered backoff (a timer)
    // Simulate unexpected close
    mockWebSocket.onclose({ code: 1006 });
    jest.runOnlyPendingTimers(); // EDIT 2: the backoff's timer fires now

    // Should attempt reconnection
    expect(global.WebSocket).toHaveBeenCalledTimes(2);
  });
});

describe("OptimisticUpdateManager", () => {
  let manager: OptimisticUpdateManager;
  let mockConflictResolver: ConflictResolver;

  beforeEach(() => {
    mockConflictResolver = {
      hasConflict: jest.fn(),
      resolve: jest.fn(),
    };
    manager = new OptimisticUpdateManager(mockConflictResolver);
  });

  it("should apply optimistic updates immediately", async () => {
    const update: OptimisticUpdate = {
      id: "test-update",
      operation: "update",
      resourceType: "trip",
      resourceId: "trip-123",
      data: { name: "New Name" },
      timestamp: Date.now(),
      serverConfirmed: false,
    };

    const uiUpdateSpy = jest.spyOn(manager as any, "applyToUI");

    await manager.applyOptimisticUpdate(update);

    expect(uiUpdateSpy).toHaveBeenCalledWith(update);
    expect(manager["pendingUpdates"].has("test-update")).toBe(true);
  });

  it("should handle server confirmation", async () => {
    // Setup optimistic update
    const update: OptimisticUpdate = {
      id: "test-update",
      operation: "update",
      resourceType: "trip",
      resourceId: "trip-123",
      data: { name: "New Name" },
      timestamp: Date.now(),
      serverConfirmed: false,
    };

    await manager.applyOptimisticUpdate(update);

    // Simulate server confirmation
    await manager.handleServerUpdate({
      resourceId: "trip-123",
      data: { name: "New Name" },
    });

    expect(manager["pendingUpdates"].has("test-update")).toBe(false);
  });
});
