// Type declarations for outbox.js.
import { EventEmitter, type JsonValue, type ServerMessage, type WebSocketConnection } from "./websocket-connection.js";

/** The storage key prefix: entries live under `${OUTBOX_STORAGE_PREFIX}.<userId>.<tripId>`. */
export declare const OUTBOX_STORAGE_PREFIX: "tripsage.outbox.v1";

/** What the outbox needs of a store: the Web Storage API's three methods (localStorage fits). */
export interface OutboxStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A Storage-shaped store held in a Map (Node, tests, browsers without localStorage). */
export declare function memoryStorage(): OutboxStorage & { clear(): void; key(index: number): string | null; readonly length: number };

/** A kept `trip.update`. `sent`: it may have reached the server (never rewritten after). */
export interface OutboxEdit {
  kind: "edit";
  id: string;
  update_id: string;
  field: string;
  value: JsonValue;
  base_version: number;
  created_at: number;
  updated_at?: number;
  sent: boolean;
}

/** A kept `chat.send`. */
export interface OutboxMessage {
  kind: "message";
  id: string;
  client_id: string;
  text: string;
  created_at: number;
  sent: boolean;
}

export type OutboxEntry = OutboxEdit | OutboxMessage;

/** The message an entry is sent as: `trip.update` (id = update_id) or `chat.send` (id = client_id). */
export declare function outboxMessage(entry: OutboxEdit): {
  type: "trip.update";
  id: string;
  update_id: string;
  field: string;
  value: JsonValue;
  base_version: number;
};
export declare function outboxMessage(entry: OutboxMessage): { type: "chat.send"; id: string; text: string; client_id: string };

export interface OutboxCounts {
  /** Entries not yet acknowledged. */
  total: number;
  edits: number;
  messages: number;
  /** Entries not sent on a live, caught-up connection. */
  waiting: number;
}

export interface OfflineOutboxOptions {
  userId: number | string;
  tripId: number | string;
  /** Default: localStorage, else memoryStorage(). */
  storage?: OutboxStorage;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  now?: () => number;
}

/** How an entry was settled: the ack's status (a duplicate's original_status), or `applied` /
 * `merged` / `posted` for the event that named it. */
export type OutboxSettledStatus = "applied" | "merged" | "conflict" | "duplicate" | "already_resolved" | "posted";

export interface OfflineOutboxEvents {
  change: [counts: OutboxCounts];
  sent: [entry: OutboxEntry];
  settled: [info: { entry: OutboxEntry; answer: ServerMessage; status: OutboxSettledStatus }];
  refused: [info: { entry: OutboxEntry; error: ServerMessage }];
  error: [error: unknown];
}

/** The streams entries go over: edits on the trip socket, chat messages on the chat socket. */
export type OutboxStream = "trip" | "chat";

/** Edits and chat messages of one user on one trip, kept until the server acknowledges them. */
export declare class OfflineOutbox extends EventEmitter<OfflineOutboxEvents> {
  constructor(options: OfflineOutboxOptions);
  userId: number | string;
  tripId: number | string;
  storage: OutboxStorage;
  /** The storage key: `tripsage.outbox.v1.<userId>.<tripId>`. */
  key: string;
  readonly entries: OutboxEntry[];
  readonly size: number;
  readonly waitingCount: number;
  /** The entries not sent on a live, caught-up connection, in the order made. */
  waitingEntries(): OutboxEntry[];
  counts(): OutboxCounts;
  /** A second edit of a field whose first was never sent replaces its value (and keeps its
   * update_id and base_version): the returned entry is then that first one. */
  addEdit(edit: { field: string; value: JsonValue; baseVersion: number; updateId?: string }): OutboxEdit;
  addMessage(message: { text: string; clientId?: string }): OutboxMessage;
  remove(id: string): boolean;
  clear(): void;
  /** Storage changed in another tab: count again and send what is new. */
  refresh(): void;
  /** Send the stream's entries whenever the connection is established and caught up (after its
   * resume's answer, or its snapshot). Attach before it is established: in the turn that
   * constructs it, or before connect() with autoConnect: false. Returns a detach function. */
  attach(connection: WebSocketConnection, stream: OutboxStream): () => void;
  detach(stream: OutboxStream): void;
  handleMessage(message: ServerMessage | null | undefined, stream?: OutboxStream | null): OutboxEntry | undefined;
}
