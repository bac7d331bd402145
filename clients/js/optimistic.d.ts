// Type declarations for optimistic.js.
import { EventEmitter, type ServerMessage } from "./websocket-connection.js";

/** An update shown before the server confirmed it (the seed's OptimisticUpdate; `id`,
 * `timestamp` and `serverConfirmed` are filled in by applyOptimisticUpdate when missing). */
export interface OptimisticUpdate {
  id?: string;
  operation?: string;
  resourceType?: string;
  resourceId?: string | number;
  /** The changed fields; for a trip update, one key (or use field/value). */
  data?: { [field: string]: unknown };
  field?: string;
  value?: unknown;
  /** The trip version the edit was made on (base_version). */
  baseVersion?: number;
  base_version?: number;
  timestamp?: number;
  serverConfirmed?: boolean;
  /** Other ids an ack or error may name this update by. */
  requestId?: string;
  updateId?: string;
  /** After a `merged` answer: what was proposed (`value` is then the merged text). */
  proposedValue?: unknown;
  [key: string]: unknown;
}

/** An update once applyOptimisticUpdate has filled it in. */
export type AppliedUpdate<U extends OptimisticUpdate = OptimisticUpdate> = U & {
  id: string;
  timestamp: number;
  serverConfirmed: boolean;
};

/** The seed's path: the server's state for a resource. */
export interface ServerUpdate {
  resourceId?: string | number;
  data?: { [field: string]: unknown };
  [key: string]: unknown;
}

/** The seed's ConflictResolver (both methods optional). */
export interface ConflictResolver {
  hasConflict?(update: AppliedUpdate, serverUpdate: ServerUpdate): boolean;
  resolve?(update: AppliedUpdate, serverUpdate: ServerUpdate): unknown;
}

export interface OptimisticConflict {
  update: AppliedUpdate;
  /** The ack (or, on the seed's path, the server update) that reported it. */
  ack: ServerMessage | ServerUpdate;
  conflictId?: number | null;
  serverValue?: unknown;
  /** The conflict resolver's answer (seed's path). */
  resolution?: unknown;
}

export interface OptimisticUpdateCallbacks {
  applyToUI?: (update: AppliedUpdate) => unknown;
  rollbackUI?: (update: AppliedUpdate, reason: unknown) => unknown;
  onConflict?: (conflict: OptimisticConflict) => void;
}

/** A `merged` answer: the server merged the update with changes made since its base; `value`
 * (also the update's `value` now) is the field's text in force, not the proposal. */
export interface OptimisticMerge {
  update: AppliedUpdate;
  /** The ack (`status: "merged"`, or `duplicate` of a merged first attempt), or the
   * `trip.updated` with `source: "merge"` that named the update. */
  ack: ServerMessage;
  value: unknown;
}

export interface OptimisticUpdateEvents {
  applied: [update: AppliedUpdate];
  confirmed: [update: AppliedUpdate, answer: ServerMessage | ServerUpdate];
  merged: [merge: OptimisticMerge];
  rolledBack: [info: { update: AppliedUpdate; error: unknown }];
  conflict: [conflict: OptimisticConflict];
}

/** A UUID (v4) for an update_id or a client_id (crypto.randomUUID where there is one). */
export declare function newUpdateId(): string;

/** The trip.update message for an optimistic update (update_id and id are the update's id). */
export interface TripUpdateMessage {
  type: "trip.update";
  id: string | undefined;
  update_id: string | undefined;
  field: string;
  value: unknown;
  base_version: number;
}

/** Build a trip.update from {id, field?, value?, data?, baseVersion}; throws a TypeError when
 * the update does not name exactly one field. */
export declare function tripUpdateMessage(update: OptimisticUpdate): TripUpdateMessage;

/** Keeps the updates shown before the server confirmed them. */
export declare class OptimisticUpdateManager extends EventEmitter<OptimisticUpdateEvents> {
  constructor(conflictResolver?: ConflictResolver | null, callbacks?: OptimisticUpdateCallbacks);
  conflictResolver: ConflictResolver | null;
  /** Pending updates by id. */
  pendingUpdates: Map<string, AppliedUpdate>;
  applyToUI(update: AppliedUpdate): unknown;
  rollbackUI(update: AppliedUpdate, reason: unknown): unknown;
  applyOptimisticUpdate<U extends OptimisticUpdate>(update: U): Promise<AppliedUpdate<U>>;
  handleServerUpdate(serverUpdate: ServerUpdate): Promise<void>;
  /** An ack (or an error envelope refusing an update): the update it settled. */
  handleAck(ack: ServerMessage | null | undefined): AppliedUpdate | undefined;
  handleRefusal(envelope: ServerMessage): AppliedUpdate | undefined;
  /** Route ack, error and trip.updated messages. */
  handleMessage(message: ServerMessage | null | undefined): AppliedUpdate | undefined;
  rollbackAll(reason?: unknown): void;
}
