// Optional operations hooks a RegistryStore may offer (duck-typed, so the storage interface itself stays as it
// is): a readiness check for /readyz, a cheap count of held relay messages for /metrics, and a telemetry sink
// the store reports heartbeat batches and connection-pool use into. A store without them still works: the
// server falls back to a trivial read for readiness and leaves the other figures out.

/** Connections of a database pool, as reported by a store that has one. */
export interface PoolUsage {
  /** Connections open (idle and in use). */
  total: number;
  /** Open connections not running a query. */
  idle: number;
  /** Callers queued for a connection. */
  waiting: number;
}

/** What a store reports into; the server's metrics implement it. Calls must be cheap and never throw. */
export interface StoreTelemetry {
  /** One write of heartbeats (last_seen updates) covering `size` agents. */
  heartbeatBatch(size: number): void;
  /** The pool's state now (call on change or periodically). */
  poolUsage(usage: PoolUsage): void;
}

export interface StoreOperationsHooks {
  /**
   * Resolves when the store can serve: its database answers and carries the schema this code needs. Throws a
   * StoreNotReadyError with a reason fit for a public probe reply, or any other error (logged, not shown).
   */
  ready?(): Promise<void> | void;
  /** Unacknowledged relay messages held in all inboxes, if the store can tell it cheaply. */
  heldMessages?(): Promise<number> | number;
  /** Gives the store the sink for its figures; called once, right after the server takes the store. */
  attachTelemetry?(telemetry: StoreTelemetry): void;
}

/**
 * The store cannot serve for a reason that is safe to show to anyone who can reach /readyz (no host names,
 * no credentials): "not migrated to version 3", "database is closed".
 */
export class StoreNotReadyError extends Error {
  override readonly name = "StoreNotReadyError";
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The hooks `store` offers (each one only when it is a function). */
export function storeHooks(store: object): StoreOperationsHooks {
  const candidate = store as Record<string, unknown>;
  const hooks: StoreOperationsHooks = {};
  if (typeof candidate.ready === "function") hooks.ready = candidate.ready.bind(store);
  if (typeof candidate.heldMessages === "function") hooks.heldMessages = candidate.heldMessages.bind(store);
  if (typeof candidate.attachTelemetry === "function") {
    hooks.attachTelemetry = candidate.attachTelemetry.bind(store);
  }
  return hooks;
}
