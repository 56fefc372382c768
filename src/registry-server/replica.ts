// What a store shared by several server processes (replicas) offers them besides rows: registry-wide spent proof
// nonces, a sweep that one replica runs per interval, and cross-replica wake-ups of relay long-polls. A store
// for one process (SQLite) offers none of it: its process's memory and timer already are the whole registry.
import type { NonceLedger } from "./proofs.js";
import type { ReplicaBus } from "./replica-bus.js";
import type { RegistryStore } from "./store.js";

/** How a coordinated sweep went: run here, or left to the replica that ran it (or is running it). */
export type SweepTurn<T> = { ran: true; result: T } | { ran: false; reason: "busy" | "not-due" };

export interface SharedStore extends NonceLedger {
  /** Deletes spent nonces whose keep time ended before `now`; returns how many. */
  purgeNonces(now: number): Promise<number>;
  /**
   * Runs `sweep` unless another replica is sweeping now (an advisory lock) or one started less than
   * `minIntervalMs` ago (the database's clock): with every replica calling this each interval, the sweep runs
   * once per interval whatever the number of replicas. `minIntervalMs` 0 runs it whenever the lock is free.
   */
  sweepTurn<T>(minIntervalMs: number, sweep: () => Promise<T>): Promise<SweepTurn<T>>;
  /** Listens for messages stored through any replica; see ReplicaBus. */
  listenInboxes(handlers: {
    onInbox: (peerId: string) => void;
    onResync: () => void;
    onError?: (error: unknown) => void;
  }): Promise<ReplicaBus>;
}

/** The store's replica features, when it is shared by replicas. */
export function sharedStoreOf(store: RegistryStore): SharedStore | undefined {
  const shared = (store as { shared?: SharedStore }).shared;
  return shared && typeof shared.sweepTurn === "function" ? shared : undefined;
}

/**
 * Sweep timers fire on every replica; a turn is taken only when the last sweep is this much of an interval old,
 * so timers that drift a little never skip an interval, and the other replicas' timers in between find it done.
 */
export const SWEEP_DUE_FRACTION = 0.8;
